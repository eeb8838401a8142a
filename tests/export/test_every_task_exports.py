"""Every task model exports, with and without a PEFT method, and each of its signatures
(serving_default, serve_ids, serve_examples) answers in a fresh process that imports only
tensorflow and tensorflow_text exactly as the in-memory model's signature functions do.

The requests are the export's own warmup file, so this also checks that TF Serving's warmup
replays for every task."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tfft.export import export_saved_model
from tfft.export.saved_model import read_warmup_requests
from tfft.tasks import QuestionAnswerer, SequenceClassifier, TokenClassifier

REPLAY = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the in-graph tokenizer's ops
from tensorflow_serving.apis import prediction_log_pb2
results = {}
for path in sys.argv[1:]:
    loaded = tf.saved_model.load(path)
    replies = results[path] = []
    for record in tf.data.TFRecordDataset(path + "/assets.extra/tf_serving_warmup_requests").as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        out = loaded.signatures[request.model_spec.signature_name](**inputs)
        replies.append({k: np.char.decode(v.numpy().astype(bytes)).tolist() if v.dtype == tf.string
                        else v.numpy().tolist() for k, v in out.items()})
print(json.dumps(results))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("tfft", "transformers", "tokenizers"))))
"""

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _randomize(layer, seed):
    rng = np.random.default_rng(seed)
    layer.kernel.assign(rng.normal(0, 2.0, layer.kernel.shape).astype("float32"))


def _token_classifier(checkpoint):
    model = TokenClassifier.from_pretrained(checkpoint, labels=LABELS)
    _randomize(model.classifier, 1)
    return model


def _question_answerer(checkpoint):
    model = QuestionAnswerer.from_pretrained(checkpoint, version_2=True)
    _randomize(model.qa_outputs, 2)
    return model


def _lora_classifier(checkpoint):
    model = SequenceClassifier.from_pretrained(checkpoint, labels=["negative", "positive"])
    model.add_adapter("default", {"method": "lora", "r": 4, "target_modules": ["query", "value"]})
    for variable in model.trainable_variables:  # a trained adapter, not the identity it starts as
        variable.assign(np.random.default_rng(3).normal(0, 0.2, variable.shape).astype("float32"))
    model.fold_adapters()
    return model


def _prefix_token_classifier(checkpoint):
    model = _token_classifier(checkpoint)
    model.add_adapter("default", {"method": "prefix_tuning", "num_virtual_tokens": 4})
    model.fold_adapters()  # not mergeable: the prefixes stay in the graph
    return model


# Pair classifiers export both strings in tests/test_cli_train.py; single ones in test_saved_model.py.
MODELS = {"token": _token_classifier,
          "qa": _question_answerer, "lora_merged": _lora_classifier, "prefix_in_graph": _prefix_token_classifier}


@pytest.fixture(scope="module")
def exports(tiny_checkpoint, tmp_path_factory):
    built = {}
    for name, build in MODELS.items():
        model = build(tiny_checkpoint)
        built[name] = model, export_saved_model(model, tmp_path_factory.mktemp("export") / name, max_length=64)
    return built


@pytest.fixture(scope="module")
def replies(exports):
    paths = [str(path) for _, path in exports.values()]
    result = subprocess.run([sys.executable, "-c", REPLAY, *paths], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    served, modules = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert modules == []  # tensorflow and tensorflow_text suffice
    return served


@pytest.mark.parametrize("name", MODELS)
def test_every_signature_answers_in_a_fresh_process(name, exports, replies):
    import tensorflow as tf

    model, path = exports[name]
    endpoints, _ = model.serving_signatures(64)
    requests = read_warmup_requests(path / "assets.extra" / "tf_serving_warmup_requests")
    assert sorted({signature for signature, _ in requests}) == ["serve_examples", "serve_ids", "serving_default"]
    for (signature, inputs), served in zip(requests, replies[str(path)], strict=True):
        if signature == "serve_examples":  # the same texts as the raw-text request of the same size
            signature, inputs = next((s, i) for s, i in requests if s == "serving_default"
                                     and len(next(iter(i.values()))) == len(inputs["examples"]))
        function, _ = endpoints[signature]
        expected = function(**{k: tf.constant(v) for k, v in inputs.items()})
        assert sorted(served) == sorted(expected), signature
        for key, value in expected.items():
            if value.dtype == tf.string:
                assert served[key] == np.char.decode(value.numpy().astype(bytes)).tolist(), (signature, key)
            else:
                np.testing.assert_allclose(served[key], value.numpy(), atol=1e-5, err_msg=f"{signature} {key}")
