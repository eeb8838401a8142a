"""Decoding checked without any training: logits are built to point at the gold spans."""

import numpy as np
import pytest

from tests.tasks.question_answering.conftest import TOKENIZERS, load_tokenizer, windows_of
from tfft.tasks.question_answering.data import QAExamples
from tfft.tasks.question_answering.decoding import best_null_threshold, decode_answers
from tfft.tasks.question_answering.features import make_qa_features, pad_features
from tfft.tasks.question_answering.metrics import squad_metrics

HIGH, LOW = 10.0, -10.0


def _gold_tokens(features, f, text, char):
    """The tokens of window f whose offsets start and end exactly at the answer, or None (found from
    the offsets alone, not from the training positions)."""
    offsets = features.offsets[f]
    starts = np.flatnonzero((offsets[:, 0] == char) & (offsets[:, 0] >= 0))
    ends = np.flatnonzero(offsets[:, 1] == char + len(text))
    if len(starts) and len(ends):
        return int(starts[-1]), int(ends[0])  # the last: SentencePiece's lone "▁" shares the next token's start
    return None


def _pointing_logits(examples, features, rng, pick=-1):
    """Noise in [-1, 0) everywhere; per answerable example, HIGH at the gold start and end in one window
    holding the answer (the last such one by default) and LOW at CLS; per unanswerable one, HIGH at
    CLS in every window."""
    starts = [rng.uniform(-1.0, 0.0, len(ids)) for ids in features.input_ids]
    ends = [rng.uniform(-1.0, 0.0, len(ids)) for ids in features.input_ids]
    chosen = {}
    for example in range(len(examples)):
        windows = windows_of(features, example)
        for f in windows:
            cls = features.cls_index[f]
            starts[f][cls] = ends[f][cls] = LOW if examples.answers[example] else HIGH
        if examples.answers[example]:
            text, char = examples.answers[example][0]
            holding = [(f, _gold_tokens(features, f, text, char)) for f in windows]
            holding = [(f, tokens) for f, tokens in holding if tokens]
            assert holding, f"no window holds {text!r} ({examples.ids[example]})"
            f, (s, e) = holding[pick]
            starts[f][s] = ends[f][e] = HIGH
            chosen[example] = f
    return starts, ends, chosen


@pytest.mark.parametrize("name", TOKENIZERS)
def test_decoding_recovers_every_gold_span(squad, name):
    features = make_qa_features(squad, load_tokenizer(name), max_length=96, doc_stride=32, training=False)
    rng = np.random.default_rng(0)
    for pick in (0, -1):  # the first or the last window holding the answer
        starts, ends, chosen = _pointing_logits(squad, features, rng, pick)
        assert sum(len(windows_of(features, e)) > 1 and e in chosen for e in range(len(squad))) >= 8
        predictions = decode_answers(squad, features, starts, ends, allow_no_answer=True)
        assert [p["id"] for p in predictions] == squad.ids
        for example, prediction in enumerate(predictions):
            if not squad.answers[example]:
                assert prediction["answer"] == "" and prediction["start"] is None and prediction["end"] is None
                assert prediction["null_score_diff"] > 0
                continue
            text, char = squad.answers[example][0]
            assert (prediction["answer"], prediction["start"], prediction["end"]) == (text, char, char + len(text))
            assert squad.contexts[example][prediction["start"]:prediction["end"]] == text
            assert prediction["score"] == pytest.approx(2 * HIGH)
            best = prediction["n_best"]
            assert best[0] == {"text": text, "start": char, "end": char + len(text), "score": prediction["score"],
                               "probability": best[0]["probability"]}
            assert [b["score"] for b in best] == sorted((b["score"] for b in best), reverse=True)
            assert sum(b["probability"] for b in best) == pytest.approx(1.0)
            assert len({(b["start"], b["end"]) for b in best}) == len(best) <= 20
    non_ascii = [squad.answers[e][0][0] for e in range(len(squad)) if squad.answers[e]
                 and not squad.answers[e][0][0].isascii()]
    assert {"北京", "Zürich", "Lake Zürich", "Zürichdeutsch"} <= set(non_ascii)


def test_without_no_answer_every_question_gets_a_span(squad):
    features = make_qa_features(squad, load_tokenizer("bert_uncased"), max_length=96, doc_stride=32, training=False)
    starts, ends, _ = _pointing_logits(squad, features, np.random.default_rng(1))
    predictions = decode_answers(squad, features, starts, ends)
    for example, prediction in enumerate(predictions):
        assert prediction["answer"] != ""
        assert squad.contexts[example][prediction["start"]:prediction["end"]] == prediction["answer"]
        if not squad.answers[example]:  # CLS scores 2 * HIGH, the best span at most 0
            assert prediction["null_score_diff"] >= 2 * HIGH


def test_padded_batches_of_logits_decode_alike(squad):
    tokenizer = load_tokenizer("xlm_roberta")
    features = make_qa_features(squad, tokenizer, max_length=96, doc_stride=32, training=False)
    starts, ends, _ = _pointing_logits(squad, features, np.random.default_rng(2))
    batch = pad_features(features, range(len(features)), tokenizer.pad_token_id)
    padded = [np.where(batch["attention_mask"] == 1, 0.0, 50.0) for _ in range(2)]  # padding must be ignored
    for row, (s, e) in enumerate(zip(starts, ends)):
        padded[0][row, :len(s)], padded[1][row, :len(e)] = s, e
    assert decode_answers(squad, features, *padded) == decode_answers(squad, features, starts, ends)


def _single(context, question="Q?"):
    return QAExamples(ids=["x"], questions=[question], contexts=[context], answers=[[]], is_impossible=[True],
                      titles=[None], locations=["x"])


def test_max_answer_length_is_respected():
    context = "The Amazon basin has an area of approximately 7,000,000 square kilometres in South America."
    examples = _single(context)
    features = make_qa_features(examples, load_tokenizer("bert_uncased"), training=False)
    offsets = features.offsets[0]
    s = int(np.flatnonzero(offsets[:, 0] == context.index("approximately"))[0])
    e = int(np.flatnonzero(offsets[:, 1] == context.index(" in South"))[0])
    length = e - s + 1
    assert length >= 6
    starts, ends = np.full(len(offsets), -5.0), np.full(len(offsets), -5.0)
    starts[s], ends[e], ends[s + 2] = 8.0, 8.0, 3.0  # the whole phrase, and a shorter second best end
    whole = decode_answers(examples, features, [starts], [ends], max_answer_length=length)[0]
    assert whole["answer"] == "approximately 7,000,000 square kilometres"
    short = decode_answers(examples, features, [starts], [ends], max_answer_length=length - 1)[0]
    assert short["answer"] == context[offsets[s, 0]:offsets[s + 2, 1]]
    assert whole["answer"].startswith(short["answer"]) and len(short["answer"]) < len(whole["answer"])
    assert short["score"] == 8.0 + 3.0
    token_of = {int(o[0]): t for t, o in enumerate(offsets) if o[0] >= 0}
    token_end = {int(o[1]): t for t, o in enumerate(offsets) if o[0] >= 0}
    for candidate in short["n_best"]:
        assert 0 <= token_end[candidate["end"]] - token_of[candidate["start"]] < length - 1


def test_null_score_diff_is_the_lowest_cls_score_minus_the_best_span():
    context = " ".join(f"Sentence {i} tells of the river Amazon and of Manaus." for i in range(12))
    examples = _single(context)
    features = make_qa_features(examples, load_tokenizer("bert_uncased"), max_length=48, doc_stride=8, training=False)
    assert len(features) >= 3
    starts = [np.full(len(ids), -4.0) for ids in features.input_ids]
    ends = [np.full(len(ids), -4.0) for ids in features.input_ids]
    for f, cls_score in zip(range(len(features)), [5.0, 2.0, 7.0] + [9.0] * len(features)):
        starts[f][0] = ends[f][0] = cls_score / 2
    last = len(features) - 1
    token = int(np.flatnonzero(features.offsets[last][:, 0] >= 0)[-1])
    starts[last][token], ends[last][token] = 1.5, 1.0  # the best span: the window's last token, score 2.5
    prediction = decode_answers(examples, features, starts, ends)[0]
    text = context[features.offsets[last][token, 0]:features.offsets[last][token, 1]]
    assert prediction["answer"] == text and prediction["score"] == 2.5
    assert prediction["null_score_diff"] == pytest.approx(2.0 - 2.5)  # the lowest CLS score is window 1's
    for threshold, answer in ((-0.6, ""), (-0.5, text), (0.0, text)):  # no answer when the diff is above it
        got = decode_answers(examples, features, starts, ends, allow_no_answer=True, null_threshold=threshold)[0]
        assert got["answer"] == answer


def test_spans_outside_the_context_are_never_answers():
    examples = _single("Zürich lies at the tip of Lake Zürich.", question="Where does Zürich lie?")
    features = make_qa_features(examples, load_tokenizer("bert_uncased"), training=False)
    offsets = features.offsets[0]
    context = np.flatnonzero(offsets[:, 0] >= 0)
    starts = np.where(offsets[:, 0] >= 0, -3.0, 9.0)  # every question and special token scores higher
    ends = starts.copy()
    ends[context[-2]] = -1.0
    prediction = decode_answers(examples, features, [starts], [ends], n_best=len(offsets))[0]
    assert prediction["end"] == offsets[context[-2], 1] and prediction["start"] in offsets[context, 0]
    assert prediction["score"] == -3.0 + -1.0
    # With only question tokens among the n best starts there is no span at all.
    empty = decode_answers(examples, features, [starts], [ends], n_best=2)[0]
    assert empty == {"id": "x", "answer": "", "start": None, "end": None, "score": None, "null_score_diff": None,
                     "n_best": []}


def test_logits_must_match_the_windows(squad):
    features = make_qa_features(squad, load_tokenizer("bert_uncased"), max_length=96, doc_stride=32, training=False)
    starts = [np.zeros(len(ids)) for ids in features.input_ids]
    with pytest.raises(ValueError, match=f"got {len(features) - 1} start and {len(features)} end logit rows"):
        decode_answers(squad, features, starts[1:], starts)
    short = [s[:-1] for s in starts]
    with pytest.raises(ValueError, match=r"start_logits\[0\] has \d+ values but window 0 has \d+ tokens"):
        decode_answers(squad, features, short, starts)


# -- the no-answer threshold -------------------------------------------------------------------------
def _examples(golds):
    n = len(golds)
    return QAExamples(ids=[f"q{i}" for i in range(n)], questions=["Q?"] * n, contexts=["C."] * n,
                      answers=[[(g, 0)] if g else [] for g in golds], is_impossible=[not g for g in golds],
                      titles=[None] * n, locations=[f"q{i}" for i in range(n)])


def _prediction(id, span, diff):
    return {"id": id, "answer": span, "start": 0, "end": len(span), "score": 1.0, "null_score_diff": diff,
            "n_best": [{"text": span, "start": 0, "end": len(span), "score": 1.0, "probability": 1.0}]}


def test_best_null_threshold_on_a_constructed_case():
    examples = _examples(["Paris", "Gustave Eiffel", "", ""])
    predictions = [_prediction("q0", "Paris", -3.0), _prediction("q1", "Eiffel", -2.0),
                   _prediction("q2", "1889", 2.0), _prediction("q3", "Tower", -1.0)]
    # Official find_best_thresh, questions by rising diff. All answered "no answer": q2, q3 right, score 2.
    # q0 (-3) answered: +1 (F1 1) -> 3; q1 (-2): +2/3 (P 1/1, R 1/2) -> 3 2/3, the best;
    # q3 (-1): an unanswerable one answered, -1 -> 2 2/3; q2 (2): -1 -> 1 2/3.
    threshold, best_f1 = best_null_threshold(examples, predictions)
    assert threshold == -2.0
    assert best_f1 == pytest.approx(100 * (2 + 1 + 2 / 3) / 4)
    # Answering with that threshold (no answer when diff > -2) scores that F1.
    thresholded = {p["id"]: (p["n_best"][0]["text"] if p["null_score_diff"] <= threshold else "") for p in predictions}
    assert squad_metrics(examples, thresholded, version_2=True)["f1"] == pytest.approx(best_f1)
    # squad_metrics' best_f1 is the same search.
    metrics = squad_metrics(examples, predictions, version_2=True)
    assert (metrics["best_f1_thresh"], metrics["best_f1"]) == (threshold, pytest.approx(best_f1))
    assert metrics["best_exact"] == pytest.approx(100 * 3 / 4) and metrics["best_exact_thresh"] == -3.0


def test_best_null_threshold_when_answering_nothing_is_best():
    examples = _examples(["Paris", "", ""])
    predictions = [_prediction("q0", "Lyon", -1.0), _prediction("q1", "Nice", -2.0), _prediction("q2", "Metz", -0.5)]
    threshold, best_f1 = best_null_threshold(examples, predictions)
    assert best_f1 == pytest.approx(100 * 2 / 3)
    assert threshold < -2.0  # below every diff: every question gets no answer


def test_best_null_threshold_needs_every_prediction():
    with pytest.raises(ValueError, match="no prediction for 1 questions, e.g. 'q1'"):
        best_null_threshold(_examples(["Paris", ""]), [_prediction("q0", "Paris", 0.0)])
