"""The exported SavedModel answers raw text in a fresh process with the in-memory model's outputs."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tfft.errors import TfftError
from tfft.export import export_saved_model
from tfft.export.saved_model import WARMUP_TEXTS, read_metadata, read_warmup_requests
from tfft.tasks import SequenceClassifier

TEXTS = ["A gripping, funny film.", "Dull, long and pointless!", "naïve café 电影 🎬"]

LOAD_AND_RUN = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the in-graph tokenizer's ops
loaded = tf.saved_model.load(sys.argv[1])
texts = tf.constant(json.loads(sys.argv[2]))
out = loaded.signatures["serving_default"](text=texts)
print(json.dumps({k: v.numpy().tolist() if v.dtype != tf.string else [s.decode() for s in v.numpy()]
                  for k, v in out.items()}))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("tfft", "transformers", "tokenizers"))))
"""


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint):
    return SequenceClassifier.from_pretrained(tiny_checkpoint, labels=["negative", "positive"])


@pytest.fixture(scope="module")
def exported(classifier, tmp_path_factory):
    return export_saved_model(classifier, tmp_path_factory.mktemp("export") / "sentiment")


def test_layout_and_versions(classifier, exported):
    assert exported.name == "1" and (exported / "saved_model.pb").is_file()
    second = export_saved_model(classifier, exported.parent)
    assert second.name == "2"
    with pytest.raises(TfftError, match="already exists"):
        export_saved_model(classifier, exported.parent, version=2)
    # No staging left over; TF Serving's config files beside the versions.
    assert sorted(p.name for p in exported.parent.iterdir()) == ["1", "2", "batching_parameters.txt", "models.config"]


def test_variables_hold_the_weights_once(classifier, exported):
    weights = sum(int(np.prod(v.shape)) * 4 for v in classifier.weights)
    stored = sum(f.stat().st_size for f in (exported / "variables").iterdir())
    assert weights <= stored < 1.1 * weights + 100_000


def test_metadata(classifier, exported):
    metadata = read_metadata(exported)
    assert metadata["labels"] == ["negative", "positive"] and metadata["model_class"] == "SequenceClassifier"
    assert metadata["max_length"] == 128 and metadata["tokenizer"]["kind"] == "wordpiece"
    assert metadata["model_name"] == "sentiment" and metadata["version"] == 1
    assert sorted(metadata["signatures"]) == ["serve_examples", "serve_ids", "serving_default"]
    assert metadata["signatures"]["serving_default"]["inputs"] == {"text": {"dtype": "string", "shape": [-1]}}
    assert metadata["signatures"]["serve_ids"]["outputs"]["logits"] == {"dtype": "float32", "shape": [-1, 2]}


def test_warmup_requests_replay(classifier, exported):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    requests = read_warmup_requests(exported / "assets.extra" / "tf_serving_warmup_requests")
    assert sorted({name for name, _ in requests}) == ["serve_examples", "serve_ids", "serving_default"]
    loaded = tf.saved_model.load(str(exported))
    for name, inputs in requests:
        out = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
        batch = classifier.tokenizer(list(WARMUP_TEXTS[: len(out["logits"])]))
        np.testing.assert_allclose(out["logits"], classifier(batch), atol=1e-5, err_msg=name)


def test_serve_examples_parses_tf_examples(classifier, exported):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    examples = [tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[t.encode()]))})).SerializeToString() for t in TEXTS]
    loaded = tf.saved_model.load(str(exported))
    out = loaded.signatures["serve_examples"](examples=tf.constant(examples))
    np.testing.assert_allclose(out["logits"], classifier(classifier.tokenizer(TEXTS)), atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="text"):  # a tf.Example without the feature
        loaded.signatures["serve_examples"](examples=tf.constant([tf.train.Example().SerializeToString()]))


def test_tf_serving_config_files(exported):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse((exported.parent / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == ("sentiment", "/models/sentiment", "tensorflow")
    batching = (exported.parent / "batching_parameters.txt").read_text()
    fields = dict(line.replace("{ value:", "").rstrip(" }").split(None, 1) for line in batching.splitlines()
                  if line and not line.startswith("#"))
    # TF Serving batches every signature; padding would fill attention_mask with 1s, so it is off.
    assert fields["pad_variable_length_inputs:"] == "false"
    assert set(fields) == {"max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches",
                           "pad_variable_length_inputs:"}


def test_fresh_process_matches_in_memory_model(classifier, exported):
    result = subprocess.run([sys.executable, "-c", LOAD_AND_RUN, str(exported), json.dumps(TEXTS)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served, modules = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert modules == []  # tensorflow and tensorflow_text suffice: no tfft, no HF tokenizers
    expected = classifier.predict_texts(TEXTS)
    assert served["labels"] == [e["label"] for e in expected]
    np.testing.assert_allclose(served["probabilities"], [list(e["probabilities"].values()) for e in expected],
                               atol=1e-5)


def test_serve_ids_signature(classifier, exported):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(str(exported))
    batch = classifier.tokenizer(TEXTS)
    out = loaded.signatures["serve_ids"](**{k: tf.constant(v) for k, v in batch.items()})
    np.testing.assert_allclose(out["logits"], classifier(batch), atol=1e-5)


def test_saved_model_cli_lists_both_signatures(exported):
    cli = subprocess.run(["saved_model_cli", "show", "--dir", str(exported), "--all"],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "signature_def['serving_default']" in cli.stdout and "signature_def['serve_ids']" in cli.stdout


def test_multi_label_labels_are_joined_names(tiny_checkpoint, tmp_path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    model = SequenceClassifier.from_pretrained(tiny_checkpoint, labels=["a", "b", "c"],
                                               problem_type="multi_label_classification")
    kernel, _ = model.classifier.get_weights()
    model.classifier.set_weights([np.zeros_like(kernel), np.array([5.0, -5.0, 5.0], np.float32)])
    loaded = tf.saved_model.load(str(export_saved_model(model, tmp_path)))
    out = loaded.signatures["serving_default"](text=tf.constant(TEXTS[:2]))
    assert [s.decode() for s in out["labels"].numpy()] == ["a,c", "a,c"]
