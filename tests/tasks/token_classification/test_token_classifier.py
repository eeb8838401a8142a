"""`TokenClassifier`: word alignment, windows, prediction on raw text, transformers interop, in-graph entities."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import FIXTURES
from tests.encoders.conftest import ENCODER_FIXTURES, reference, reference_inputs
from tests.tasks.hf_models import perturbed_hf_model
from tfft.tasks.token_classification.features import IGNORE, make_token_features, word_predictions
from tfft.tasks.token_classification.model import TokenClassifier
from tfft.tasks.token_classification.schemes import extract_entities
from tfft.tasks.token_classification.serving import decode_entities
from tfft.tokenizers import Tokenizer

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.from_pretrained(FIXTURES / "tokenizers" / "bert_uncased")


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    model = TokenClassifier.from_pretrained(tiny_checkpoint, labels=LABELS)
    rng = np.random.default_rng(0)  # a random head, so predictions vary from word to word
    model.classifier.kernel.assign(rng.normal(0, 2.0, model.classifier.kernel.shape).astype("float32"))
    return model


def test_first_subword_carries_the_tag(tokenizer):
    words = [["Barack", "Obamaesque", "visited", "Zürich"]]
    features = make_token_features(words, tokenizer, tag_ids=[np.array([1, 2, 0, 3])], label_names=LABELS,
                                   max_length=64)
    (ids,), (word_ids,), (labels,) = features.input_ids, features.word_ids, features.labels
    tokens = tokenizer.hf_tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and word_ids[0] == word_ids[-1] == -1
    for word in range(4):
        positions = np.flatnonzero(word_ids == word)
        assert labels[positions[0]] == [1, 2, 0, 3][word]
        assert (labels[positions[1:]] == IGNORE).all() and not tokens[positions[0]].startswith("##")
    assert len(np.flatnonzero(word_ids == 1)) > 1  # a word split into several subwords


def test_label_all_subwords_turns_b_into_i(tokenizer):
    features = make_token_features([["Obamaesque"]], tokenizer, tag_ids=[np.array([1])], label_names=LABELS,
                                   max_length=64, label_all_subwords=True)
    labels = features.labels[0][features.word_ids[0] == 0]
    assert labels[0] == 1 and len(labels) > 1 and (labels[1:] == 2).all()


def test_truncated_words_are_predicted_o_not_dropped(tokenizer):
    words = [["paris"] * 20]
    features = make_token_features(words, tokenizer, tag_ids=[np.full(20, 3)], max_length=8)
    kept = len(set(features.word_ids[0][features.word_ids[0] >= 0]))
    assert len(features) == 1 and len(features.input_ids[0]) == 8 and 0 < kept < 20
    logits = [np.eye(5)[np.maximum(features.labels[0], 0)] * 5]
    tags, _ = word_predictions(features, logits, [20])
    assert list(tags[0][:kept]) == [3] * kept and list(tags[0][kept:]) == [-1] * (20 - kept)  # -1: no window kept it


@pytest.mark.parametrize("stride", [0, 2, 4])
def test_windows_cover_every_word_and_pick_the_most_central(tokenizer, stride):
    words = [[f"w{i}" if i % 3 else "paris" for i in range(30)], ["short", "one"]]
    gold = [np.arange(30) % 5, np.array([1, 2])]
    features = make_token_features(words, tokenizer, tag_ids=gold, label_names=LABELS, max_length=12, stride=stride)
    assert np.bincount(features.sentence)[1] == 1 and np.bincount(features.sentence)[0] > 2
    assert all(len(ids) <= 12 for ids in features.input_ids)
    # Logits pointing at the gold tag of each labelled token: every word gets its own tag back.
    logits = [np.eye(5)[np.maximum(labels, 0)] * 5 for labels in features.labels]
    tags, scores = word_predictions(features, logits, [30, 2])
    assert list(tags[0]) == list(gold[0]) and list(tags[1]) == [1, 2] and (scores[0] > 0.9).all()


def test_predict_texts_gives_character_spans(model):
    texts = ["Barack Obama visited São Paulo, then Zürich!", "", "   ", "ok"]
    results = model.predict_texts(texts)
    assert len(results) == 4 and results[1] == [] and results[2] == []
    for text, entities in zip(texts, results):
        for entity in entities:
            assert text[entity["start"] : entity["end"]] == entity["text"] and entity["label"] in ("PER", "LOC")
            assert 0 < entity["score"] <= 1
    assert sum(len(r) for r in results) > 0


def test_in_graph_entities_equal_seqeval_chunking():
    """decode_entities (TF ops) against extract_entities (seqeval's default chunking) on random tags."""
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
    rng = np.random.default_rng(1)
    batch, words = 64, 9
    tag_ids = rng.integers(0, len(labels), (batch, words)).astype(np.int32)
    tag_ids[:8] = 0  # rows without entities
    lengths = rng.integers(0, words + 1, batch)
    # One token per word, words "a" .. separated by spaces; padding after each row's length.
    word_ids = np.where(np.arange(words)[None, :] < lengths[:, None], np.arange(words)[None, :], -1).astype(np.int32)
    starts = (np.arange(words) * 2).astype(np.int32)[None, :].repeat(batch, 0)
    texts = [" ".join("abcdefghi"[:n]) for n in lengths]
    probabilities = rng.uniform(0.2, 1.0, (batch, words)).astype(np.float32)
    out = decode_entities(tf.constant(texts), tf.constant(tag_ids), tf.constant(probabilities), tf.constant(word_ids),
                          tf.constant(starts), tf.constant(starts + 1), labels)
    for row in range(batch):
        expected = extract_entities([labels[t] for t in tag_ids[row, : lengths[row]]], scheme="IOBES")
        n = int(out["num_entities"][row])
        assert n == len(expected)
        for k, (label, first, last) in enumerate(expected):
            assert out["entity_labels"][row, k].numpy().decode() == label
            assert (int(out["entity_starts"][row, k]), int(out["entity_ends"][row, k])) == (2 * first, 2 * last + 1)
            assert out["entity_texts"][row, k].numpy().decode() == texts[row][2 * first : 2 * last + 1]
            np.testing.assert_allclose(float(out["entity_scores"][row, k]),
                                       probabilities[row, first : last + 1].mean(), rtol=1e-6)


@pytest.mark.requires("torch")
@pytest.mark.parametrize("name", ["bert", "roberta", "distilbert", "electra", "albert", "xlm_roberta"])
def test_transformers_checkpoint_loads_and_saves_back(name, tmp_path):
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(ENCODER_FIXTURES / name, id2label=dict(enumerate(LABELS)))
    theirs = perturbed_hf_model(transformers.AutoModelForTokenClassification, config)
    theirs.save_pretrained(tmp_path / "theirs")
    inputs = reference_inputs(reference(name))
    if name == "distilbert":
        inputs = {k: v for k, v in inputs.items() if k != "token_type_ids"}

    def torch_logits(model):
        with torch.no_grad():
            return model.eval()(**{k: torch.tensor(v, dtype=torch.long) for k, v in inputs.items()}).logits.numpy()

    ours = TokenClassifier.from_pretrained(tmp_path / "theirs", tokenizer=False)
    assert ours.labels == LABELS
    assert ours.encoder.loading_report.unused == [] and ours.encoder.loading_report.newly_initialized == []
    np.testing.assert_allclose(np.asarray(ours(inputs, training=False)), torch_logits(theirs), atol=1e-5)

    ours.save_pretrained(tmp_path / "ours")
    again, info = transformers.AutoModelForTokenClassification.from_pretrained(
        tmp_path / "ours", attn_implementation="eager", output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]), info
    assert again.config.id2label == dict(enumerate(LABELS))
    np.testing.assert_allclose(torch_logits(again), np.asarray(ours(inputs, training=False)), atol=1e-5)


def test_other_labels_start_a_new_head(model, tmp_path, caplog):
    model.save_pretrained(tmp_path)
    with caplog.at_level("WARNING", logger="tfft"):
        other = TokenClassifier.from_pretrained(tmp_path, labels=["O", "B-ORG", "I-ORG"], tokenizer=False)
    assert "starts newly initialized" in caplog.text and other.num_labels == 3
    same = TokenClassifier.from_pretrained(tmp_path, tokenizer=False)
    np.testing.assert_array_equal(same.classifier.kernel.numpy(), model.classifier.kernel.numpy())
