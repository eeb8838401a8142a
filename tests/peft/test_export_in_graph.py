"""Methods that cannot merge stay in the exported graph: a SavedModel of a classifier with
Houlsby adapters and of a tagger with soft prompts, loaded in a fresh process, gives the
in-memory models' outputs from raw text, and a tfft run with such a method exports it the same way."""

import json
import subprocess
import sys

import numpy as np
import pytest

import tfft
from tests.peft.helpers import perturb
from tests.tasks.token_classification.test_token_export import LABELS as TAGS
from tests.tasks.token_classification.test_token_export import TEXTS
from tests.test_run_peft import write_config
from tfft.config import load_config
from tfft.export import export_saved_model

LOAD_BOTH = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the in-graph tokenizer's ops
decode = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])
served = {}
for name, path in json.loads(sys.argv[1]).items():
    out = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(json.loads(sys.argv[2])))
    served[name] = {k: (decode(v.numpy()) if v.dtype == tf.string else v.numpy()).tolist() for k, v in out.items()}
print(json.dumps(served))
"""


@pytest.fixture(scope="module")
def folded_models(tiny_checkpoint):
    classifier = tfft.SequenceClassifier.from_pretrained(tiny_checkpoint, labels=["negative", "positive"])
    classifier.add_adapter("houlsby", {"method": "houlsby"})
    classifier.add_adapter("other", {"method": "lora"})
    tagger = tfft.TokenClassifier.from_pretrained(tiny_checkpoint, labels=TAGS)
    tagger.add_adapter("prompt", {"method": "prompt_tuning", "num_virtual_tokens": 4})
    for model, seed in ((classifier, 0), (tagger, 1)):
        perturb(model.trainable_variables, seed=seed, scale=1.0)  # trained adapters and heads
    before = {"classifier": classifier.predict_texts(TEXTS), "tagger": tagger.predict_texts(TEXTS, max_length=64)}
    for model in (classifier, tagger):
        model.fold_adapters()
    return classifier, tagger, before


def test_fold_keeps_an_unmergeable_adapter_in_the_graph(folded_models):
    classifier, tagger, before = folded_models
    assert list(classifier.peft_config) == ["houlsby"] and classifier.active_adapter == "houlsby"
    assert list(tagger.peft_config) == ["prompt"]
    assert classifier.predict_texts(TEXTS) == before["classifier"]
    assert tagger.predict_texts(TEXTS, max_length=64) == before["tagger"]
    with pytest.raises(tfft.errors.ConfigError, match="cannot merge into the base weights"):
        classifier.merge_and_unload()


def test_fresh_process_serves_the_in_graph_adapters(folded_models, tmp_path):
    classifier, tagger, before = folded_models
    paths = {"classifier": str(export_saved_model(classifier, tmp_path / "sentiment")),
             "tagger": str(export_saved_model(tagger, tmp_path / "ner", max_length=64))}
    result = subprocess.run([sys.executable, "-c", LOAD_BOTH, json.dumps(paths), json.dumps(TEXTS)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    expected = before["classifier"]
    assert served["classifier"]["labels"] == [e["label"] for e in expected]
    np.testing.assert_allclose(served["classifier"]["probabilities"],
                               [list(e["probabilities"].values()) for e in expected], atol=1e-5)
    tags = served["tagger"]
    assert sum(len(e) for e in before["tagger"]) >= 2
    for row, entities in enumerate(before["tagger"]):
        n = tags["num_entities"][row]
        got = [{"label": tags["entity_labels"][row][k], "text": tags["entity_texts"][row][k],
                "start": tags["entity_starts"][row][k], "end": tags["entity_ends"][row][k]} for k in range(n)]
        assert got == [{k: e[k] for k in ("label", "text", "start", "end")} for e in entities]
        assert all(TEXTS[row][e["start"]:e["end"]] == e["text"] for e in entities)


def test_a_run_with_an_unmergeable_method_exports_base_plus_adapter(tmp_path, tiny_checkpoint):
    from tfft.run import evaluate, load_run_model, train

    config = load_config(write_config(tmp_path, tiny_checkpoint, "  method: pfeiffer\n"))
    metrics = train(config, verbose=0)
    run = tmp_path / "run"
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "TFFT_BOTTLENECK" and not (run / "model.keras").exists()
    assert evaluate(run, config.data.test)["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    model = load_run_model(run)
    assert model.active_adapter == "default"
    exported = max((p for p in (run / "export").iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    out = tf.saved_model.load(str(exported)).signatures["serving_default"](text=tf.constant(["a fine film"]))
    expected = model.predict_texts(["a fine film"])[0]["probabilities"]
    np.testing.assert_allclose(out["probabilities"].numpy()[0], list(expected.values()), atol=1e-5)


def test_virtual_tokens_take_positions_first(folded_models):
    from tfft.export.saved_model import default_max_length

    _, tagger, _ = folded_models
    assert default_max_length(tagger.encoder) == tagger.encoder.config.max_position_embeddings - 4
    words = [["word"] * 400]  # windows of the longest input that still fits beside the prompts
    tags, probabilities = tagger.predict_words(words, stride=32)[0]
    assert len(tags) == 400 and all(p > 0 for p in probabilities)
