"""SequenceClassifier: fit, predict_texts, saving."""

import keras
import numpy as np
import pytest

from tests.conftest import FIXTURES
from tfft.data import LabelVocab, make_dataset, read_examples
from tfft.tasks import SequenceClassifier

REVIEWS = FIXTURES / "data" / "reviews.jsonl"


def test_fit_learns_training_set(tiny_checkpoint):
    examples = read_examples(REVIEWS)
    vocab = LabelVocab.from_examples(examples)
    model = SequenceClassifier.from_pretrained(tiny_checkpoint, labels=vocab.names, dropout=0.0)
    data = make_dataset(examples, model.tokenizer, vocab, batch_size=8)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3))
    history = model.fit(data, epochs=10, verbose=0, shuffle=False)  # data is a tf.data.Dataset
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    assert model.evaluate(data, verbose=0, return_dict=True)["accuracy"] >= 0.9


@pytest.mark.parametrize("pooling", ["pooler", "cls", "mean"])
def test_pooling(tiny_checkpoint, pooling):
    model = SequenceClassifier.from_pretrained(tiny_checkpoint, num_labels=3, pooling=pooling)
    assert (model.encoder.pooler is not None) == (pooling == "pooler")
    batch = model.tokenizer(["a fine film", "dull"])
    padded = {k: np.pad(v, ((0, 0), (0, 4))) for k, v in batch.items()}
    assert model(batch).shape == (2, 3)
    if pooling == "mean":  # padding must not change the mean over real tokens
        np.testing.assert_allclose(model(batch), model(padded), atol=1e-5)


def test_predict_texts_names_labels(tiny_checkpoint):
    model = SequenceClassifier.from_pretrained(tiny_checkpoint, labels=["negative", "positive"])
    results = model.predict_texts(["a fine film", "dull"] * 20, batch_size=16)
    assert len(results) == 40
    assert results[0]["label"] in ("negative", "positive")
    assert sum(results[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_multi_label_and_regression_outputs(tiny_checkpoint):
    multi = SequenceClassifier.from_pretrained(tiny_checkpoint, labels=["a", "b", "c"],
                                               problem_type="multi_label_classification")
    out = multi.predict_texts(["x"], threshold=0.0)[0]
    assert out["label"] == ["a", "b", "c"] and all(0 < p < 1 for p in out["probabilities"].values())
    regression = SequenceClassifier.from_pretrained(tiny_checkpoint, problem_type="regression")
    assert regression.num_labels == 1 and isinstance(regression.predict_texts(["x"])[0]["score"], float)


def test_bad_arguments():
    from tfft.encoders import Encoder
    encoder = Encoder.from_pretrained(FIXTURES / "encoders" / "bert")
    with pytest.raises(ValueError, match="labels=|num_labels"):
        SequenceClassifier(encoder)
    with pytest.raises(ValueError, match="pooling 'max'"):
        SequenceClassifier(encoder, num_labels=2, pooling="max")


def test_keras_save_keeps_tokenizer(tiny_checkpoint, tmp_path):
    model = SequenceClassifier.from_pretrained(tiny_checkpoint, labels=["negative", "positive"], pooling="mean")
    texts = ["a fine film", "dull and long"]
    before = model.predict_texts(texts)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.labels == ["negative", "positive"] and loaded.pooling == "mean"
    after = loaded.predict_texts(texts)
    for a, b in zip(before, after):
        np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-6)
