"""extract_entities and entity_metrics against seqeval itself, in both modes, for IOB2 and IOBES (and IO's
default mode): random tag sequences, the WNUT-16 dev gold against seeded perturbed predictions, and
hand-made ill-formed sequences. Every number must agree within 1e-12."""

import random
from pathlib import Path

import pytest

from tfft.tasks.token_classification.data import read_token_examples
from tfft.tasks.token_classification.metrics import entity_metrics, extract_entities
from tfft.tasks.token_classification.schemes import SCHEMES, convert, entity_types, parse_tag, scheme_tags

pytestmark = pytest.mark.requires("seqeval")

WNUT_DEV = Path(__file__).parents[3] / "data" / "ner-wnut16" / "dev.conll"
AVERAGES = ("micro", "macro", "weighted")


def _seqeval_scheme(scheme):
    from seqeval.scheme import IOB2, IOBES

    return {"IOB2": IOB2, "IOBES": IOBES}[scheme]


def _seqeval_entities(sentences, mode, scheme):
    """seqeval's entities, in extract_entities's positions (sentences joined with an "O" after each)."""
    from seqeval.metrics.sequence_labeling import get_entities
    from seqeval.scheme import Entities

    if mode == "default":
        return get_entities([list(s) for s in sentences])
    found, offset = [], 0
    for sentence, entities in zip(sentences, Entities(sentences, _seqeval_scheme(scheme)).entities):
        found += [(e.tag, offset + e.start, offset + e.end - 1) for e in entities]  # seqeval's end is exclusive
        offset += len(sentence) + 1
    return found


def _assert_same_as_seqeval(true, pred, mode, scheme):
    from seqeval.metrics import accuracy_score, classification_report

    options = {"mode": "strict", "scheme": _seqeval_scheme(scheme)} if mode == "strict" else {}
    expected = classification_report(true, pred, output_dict=True, zero_division=0, **options)
    m = entity_metrics(true, pred, mode=mode, scheme=scheme)
    assert sorted(set(expected) - {f"{a} avg" for a in AVERAGES}) == m["entity_types"]
    for entity_type, row in m["per_type"].items():
        theirs = expected[entity_type]
        assert row["support"] == theirs["support"]
        for key, their_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert abs(row[key] - theirs[their_key]) <= 1e-12, (entity_type, key)
    for average in AVERAGES:
        theirs = expected[f"{average} avg"]
        assert m["num_true_entities"] == theirs["support"]
        for key, their_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert abs(m[f"{average}_{key}"] - theirs[their_key]) <= 1e-12, (average, key)
    assert m["token_accuracy"] == pytest.approx(accuracy_score(true, pred), abs=1e-12)
    assert m["num_pred_entities"] == len(_seqeval_entities(pred, mode, scheme))
    return m


def _perturbed(sentences, scheme, rng, rate=0.2):
    """Predictions a weak tagger might make: random tags, dropped B-, I- without B-, changed types, shifts."""
    types = entity_types(sentences)
    tags = scheme_tags(types, scheme)
    out = []
    for sentence in sentences:
        pred = list(sentence)
        for i in range(len(pred)):
            if rng.random() >= rate:
                continue
            prefix, entity_type = parse_tag(pred[i])
            kind = rng.randrange(6)
            if kind == 0:
                pred[i] = rng.choice(tags)
            elif kind == 1 and prefix in "BS":
                pred[i] = "O"  # a dropped beginning
            elif kind == 2 and prefix in "BS":
                pred[i] = f"I-{entity_type}"  # an I- with no B- before it
            elif kind == 3 and entity_type:
                pred[i] = f"{prefix}-{rng.choice(types)}"  # one word's type changed
            elif kind == 4 and entity_type:
                new_type = rng.choice(types)  # a whole entity's type changed
                j = i
                while j < len(pred) and parse_tag(pred[j])[1] == entity_type:
                    pred[j] = f"{parse_tag(pred[j])[0]}-{new_type}"
                    j += 1
            elif kind == 5 and i + 1 < len(pred):
                pred[i], pred[i + 1] = pred[i + 1], pred[i]  # a boundary shifted by one word
        out.append(pred)
    return out


@pytest.fixture(scope="module")
def wnut_dev():
    return read_token_examples(WNUT_DEV).tags


@pytest.mark.parametrize("scheme", ["IOB2", "IOBES", "IO"])
def test_entities_of_random_sequences(scheme):
    rng = random.Random(11)
    prefixes = SCHEMES[scheme]
    for _ in range(1500):
        sentences = [[rng.choice(["O", f"{rng.choice(prefixes)}-{rng.choice(['PER', 'geo-loc'])}"])
                      for _ in range(rng.randrange(0, 7))] for _ in range(rng.randrange(1, 4))]
        assert extract_entities(sentences, scheme=scheme) == _seqeval_entities(sentences, "default", scheme)
        if scheme != "IO":  # seqeval has no IO scheme for strict mode
            strict = extract_entities(sentences, mode="strict", scheme=scheme)
            assert strict == _seqeval_entities(sentences, "strict", scheme), sentences
        flat = sentences[0]
        assert extract_entities(flat, scheme=scheme) == _seqeval_entities([flat], "default", scheme)


@pytest.mark.parametrize("mode", ["default", "strict"])
@pytest.mark.parametrize("seed", range(4))
def test_wnut_dev_against_perturbed_predictions(wnut_dev, mode, seed):
    pred = _perturbed(wnut_dev, "IOB2", random.Random(seed))
    m = _assert_same_as_seqeval(wnut_dev, pred, mode, "IOB2")
    assert len(m["entity_types"]) == 10 and 0.2 < m["micro_f1"] < 0.95  # a real mix of hits and misses
    assert sum(row.get("missed", 0) for row in m["type_confusion"].values()) > 0 and m["spurious"]
    assert extract_entities(pred, mode=mode) == _seqeval_entities(pred, mode, "IOB2")


@pytest.mark.parametrize("mode", ["default", "strict"])
@pytest.mark.parametrize("seed", range(2))
def test_wnut_dev_in_iobes(wnut_dev, mode, seed):
    gold = [convert(tags, "IOB2", "IOBES") for tags in wnut_dev]
    assert any(tag.startswith("S-") for tags in gold for tag in tags)
    pred = _perturbed(gold, "IOBES", random.Random(100 + seed))
    _assert_same_as_seqeval(gold, pred, mode, "IOBES")


def test_perfect_predictions(wnut_dev):
    m = _assert_same_as_seqeval(wnut_dev, wnut_dev, "strict", "IOB2")
    assert m["micro_f1"] == 1.0 and m["num_correct_entities"] == 158


ILL_FORMED = {
    "IOB2": [
        ([["B-PER", "I-PER", "O"], ["I-LOC", "I-LOC"]], [["I-PER", "I-PER", "O"], ["B-LOC", "I-LOC"]]),
        ([["B-PER", "I-LOC", "I-LOC", "B-PER"]], [["B-PER", "B-LOC", "I-LOC", "I-PER"]]),
        ([["O", "I-PER", "B-PER", "I-PER", "I-ORG"]], [["B-PER", "I-PER", "B-PER", "I-PER", "B-ORG"]]),
        ([["I-PER"], ["I-PER"], []], [["B-PER"], ["O"], []]),
        ([["B-geo-loc", "I-geo-loc", "O"]], [["B-geo-loc", "I-person", "O"]]),
    ],
    "IOBES": [
        ([["B-PER", "E-PER", "S-LOC"], ["B-ORG", "I-ORG"]], [["B-PER", "I-PER", "S-LOC"], ["B-ORG", "E-ORG"]]),
        ([["E-PER", "E-PER", "I-PER", "S-PER", "I-PER"]], [["S-PER", "B-PER", "E-PER", "S-PER", "I-PER"]]),
        ([["B-PER", "E-LOC", "O", "I-PER", "E-PER"]], [["B-PER", "E-PER", "O", "B-PER", "E-PER"]]),
        ([["B-PER", "O", "E-PER", "B-LOC", "I-LOC", "E-LOC"]], [["S-PER", "O", "S-PER", "B-LOC", "E-LOC", "E-LOC"]]),
    ],
}


@pytest.mark.parametrize("mode", ["default", "strict"])
@pytest.mark.parametrize("scheme, true, pred", [(s, t, p) for s, cases in ILL_FORMED.items() for t, p in cases])
def test_hand_made_ill_formed_sequences(scheme, true, pred, mode):
    _assert_same_as_seqeval(true, pred, mode, scheme)
    _assert_same_as_seqeval(pred, true, mode, scheme)
