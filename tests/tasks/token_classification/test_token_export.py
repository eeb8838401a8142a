"""The exported token classifier finds, from raw text and in the graph, the in-memory model's entities."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tfft.export import export_saved_model
from tfft.tasks.token_classification.model import TokenClassifier

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
TEXTS = ["Barack Obama visited São Paulo, then Zürich!", "ok", "naïve café in 北京 🎬 with Ms. Dupont-Aignan",
         "paris paris london berlin"]

LOAD_AND_RUN = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the in-graph tokenizer's ops
loaded = tf.saved_model.load(sys.argv[1])
out = loaded.signatures["serving_default"](text=tf.constant(json.loads(sys.argv[2])))
decode = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])
print(json.dumps({k: (decode(v.numpy()) if v.dtype == tf.string else v.numpy()).tolist() for k, v in out.items()}))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("tfft", "transformers", "tokenizers"))))
"""


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    model = TokenClassifier.from_pretrained(tiny_checkpoint, labels=LABELS)
    rng = np.random.default_rng(3)
    model.classifier.kernel.assign(rng.normal(0, 2.0, model.classifier.kernel.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return export_saved_model(model, tmp_path_factory.mktemp("export") / "ner", max_length=64)


def test_fresh_process_returns_the_in_memory_entities(model, exported):
    result = subprocess.run([sys.executable, "-c", LOAD_AND_RUN, str(exported), json.dumps(TEXTS)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served, modules = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert modules == []  # tensorflow and tensorflow_text suffice
    expected = model.predict_texts(TEXTS, max_length=64)
    assert sum(len(e) for e in expected) >= 3
    for row, entities in enumerate(expected):
        n = served["num_entities"][row]
        got = [{"label": served["entity_labels"][row][k], "text": served["entity_texts"][row][k],
                "start": served["entity_starts"][row][k], "end": served["entity_ends"][row][k]}
               for k in range(n)]
        assert got == [{k: e[k] for k in ("label", "text", "start", "end")} for e in entities]
        np.testing.assert_allclose(served["entity_scores"][row][:n], [e["score"] for e in entities], atol=1e-5)
        assert served["entity_labels"][row][n:] == [""] * (len(served["entity_labels"][row]) - n)
    tags = served["tags"][0]
    assert len(tags) == len(served["word_ids"][0]) and set(tags) <= set(LABELS)


def test_serve_ids_gives_logits_and_tags(model, exported):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(str(exported))
    batch = model.tokenizer(TEXTS)
    out = loaded.signatures["serve_ids"](**{k: tf.constant(v) for k, v in batch.items()})
    logits = np.asarray(model(batch, training=False))
    np.testing.assert_allclose(out["logits"], logits, atol=1e-5)
    assert out["tags"].numpy()[0, 1].decode() == LABELS[int(np.argmax(logits[0, 1]))]
