"""`SequenceClassifier.save_pretrained` writes what transformers' `AutoModelForSequenceClassification`
loads with the same logits; `from_pretrained` reads such a checkpoint back with its head."""

import json
import logging

import numpy as np
import pytest

from tests.encoders.conftest import ENCODER_FIXTURES, reference, reference_inputs
from tests.tasks.hf_models import perturbed_hf_model
from tfft.tasks import SequenceClassifier

LABELS = ["negative", "neutral", "positive"]
SUPPORTED = ["bert", "albert", "roberta", "xlm_roberta"]


def classifier(name, labels=LABELS, **kwargs):
    """A classifier on a fixture encoder whose head is perturbed, so a mapping mistake shows."""
    model = SequenceClassifier.from_pretrained(ENCODER_FIXTURES / name, labels=labels, tokenizer=False, **kwargs)
    rng = np.random.default_rng(0)
    for variable in model.classifier.weights:
        variable.assign(rng.normal(0.0, 0.5, variable.shape).astype("float32"))
    return model


def logits(model, name):
    return np.asarray(model(reference_inputs(reference(name)), training=False))


def torch_logits(path, name):
    import torch
    import transformers

    model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
        path, attn_implementation="eager", output_loading_info=True
    )
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]), info
    inputs = reference_inputs(reference(name))
    with torch.no_grad():
        out = model.eval()(**{k: torch.tensor(v, dtype=torch.long) for k, v in inputs.items()})
    return out.logits.numpy(), model.config


@pytest.mark.requires("torch")
@pytest.mark.parametrize("name", SUPPORTED)
def test_transformers_loads_saved_classifier(name, tmp_path):
    model = classifier(name)
    model.save_pretrained(tmp_path)
    theirs, config = torch_logits(tmp_path, name)
    np.testing.assert_allclose(theirs, logits(model, name), atol=1e-5)
    assert config.id2label == dict(enumerate(LABELS)) and config.problem_type == "single_label_classification"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


@pytest.mark.parametrize("name", ["bert", "roberta"])
def test_round_trip_restores_head_and_labels(name, tmp_path):
    model = classifier(name)
    model.save_pretrained(tmp_path)
    again = SequenceClassifier.from_pretrained(tmp_path, tokenizer=False)
    assert again.labels == LABELS and again.problem_type == "single_label_classification"
    np.testing.assert_allclose(logits(again, name), logits(model, name), atol=1e-6)
    report = again.encoder.loading_report
    assert report.unused == [] and report.newly_initialized == []


def test_other_num_labels_starts_new_head(tmp_path, caplog):
    model = classifier("roberta")
    model.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="tfft"):
        again = SequenceClassifier.from_pretrained(tmp_path, num_labels=5, tokenizer=False)
    assert again.labels == [f"LABEL_{i}" for i in range(5)] and logits(again, "roberta").shape == (3, 5)
    assert "does not fit 5 labels" in caplog.text and "classifier.out_proj.weight" in caplog.text
    # RoBERTa's head dense is the pooler; its shape does not depend on the labels, so it loads.
    np.testing.assert_array_equal(again.encoder.pooler.dense.kernel, model.encoder.pooler.dense.kernel)
    assert again.encoder.loading_report.unused == ["classifier.out_proj.bias", "classifier.out_proj.weight"]


@pytest.mark.parametrize(
    "problem_type, labels",
    [("multi_label_classification", ["sports", "politics", "tech"]), ("regression", None)],
)
def test_problem_type_round_trips(problem_type, labels, tmp_path):
    model = classifier("bert", labels=labels, problem_type=problem_type)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["problem_type"] == problem_type and saved["num_labels"] == model.num_labels
    again = SequenceClassifier.from_pretrained(tmp_path, tokenizer=False)
    assert again.problem_type == problem_type and again.labels == model.labels
    np.testing.assert_allclose(logits(again, "bert"), logits(model, "bert"), atol=1e-6)


def test_tokenizer_is_saved_with_the_model(tiny_checkpoint, tmp_path):
    model = SequenceClassifier.from_pretrained(tiny_checkpoint, labels=["negative", "positive"])
    model.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    again = SequenceClassifier.from_pretrained(tmp_path)
    texts = ["a fine film", "dull and far too long"]
    for a, b in zip(model.predict_texts(texts), again.predict_texts(texts)):
        assert a["label"] == b["label"]
        np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-6)


@pytest.mark.requires("torch")
def test_loads_head_saved_by_transformers(tmp_path):
    import transformers

    config = transformers.AutoConfig.from_pretrained(ENCODER_FIXTURES / "roberta", id2label=dict(enumerate(LABELS)))
    theirs = perturbed_hf_model(transformers.AutoModelForSequenceClassification, config)
    theirs.save_pretrained(tmp_path)
    ours = SequenceClassifier.from_pretrained(tmp_path, tokenizer=False)
    assert ours.labels == LABELS
    assert ours.encoder.loading_report.unused == [] and ours.encoder.loading_report.newly_initialized == []
    np.testing.assert_allclose(logits(ours, "roberta"), torch_logits(tmp_path, "roberta")[0], atol=1e-5)


@pytest.mark.parametrize(
    "name, pooling",
    [("electra", "pooler"), ("distilbert", "pooler"), ("bert", "mean"), ("roberta", "cls")],
)
def test_unexpressible_models_raise_and_write_nothing(name, pooling, tmp_path):
    model = classifier(name, pooling=pooling)
    expected = rf"cannot save \w+Encoder with pooling='{pooling}'.*Supported: pooling='pooler'"
    with pytest.raises(ValueError, match=expected):
        model.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists()
