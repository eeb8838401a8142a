"""The exported question answerer finds, from a raw question and context and in the graph, the in-memory
model's answers (contexts that fit one window)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tfft.export import export_saved_model
from tfft.tasks.question_answering.model import QuestionAnswerer

QUESTIONS = ["Where is the tower?", "  Who built it?", "Was ist Zürich?", "What is 北京?", "When?",
             "Which café?", "How tall is it?", "Who?"]
CONTEXTS = ["The Eiffel Tower is in Paris, France.", "Gustave Eiffel's company built the tower in 1889.",
            "Zürich ist die größte Stadt der Schweiz.", "北京 (Beijing) is the capital of China.",
            "It opened on 31 March 1889, for the World's Fair.",
            "naïve café in São Paulo 🎬 with Ms. Dupont-Aignan",
            "The tower is 330 metres tall, about the height of an 81-storey building.", "ok"]
MAX_LENGTH = 128

LOAD_AND_RUN = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the in-graph tokenizer's ops
loaded = tf.saved_model.load(sys.argv[1])
questions, contexts = json.loads(sys.argv[2])
out = loaded.signatures["serving_default"](question=tf.constant(questions), context=tf.constant(contexts))
decode = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])
print(json.dumps({k: (decode(v.numpy()) if v.dtype == tf.string else v.numpy()).tolist() for k, v in out.items()}))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("tfft", "transformers", "tokenizers"))))
"""


def in_memory(model):
    return model.predict_answers(QUESTIONS, CONTEXTS, max_length=MAX_LENGTH, doc_stride=32)


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    model = QuestionAnswerer.from_pretrained(tiny_checkpoint, version_2=True)
    rng = np.random.default_rng(3)
    model.qa_outputs.kernel.assign(rng.normal(0, 2.0, model.qa_outputs.kernel.shape).astype("float32"))
    # A threshold between the questions' null score diffs, so some get an answer and some none.
    model.null_threshold = 1e9
    spans = [p["score"] for p in in_memory(model)]
    model.null_threshold = -1e9
    nulls = [p["score"] for p in in_memory(model)]
    model.null_threshold = float(np.median(np.subtract(nulls, spans)))
    return model


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return export_saved_model(model, tmp_path_factory.mktemp("export") / "qa", max_length=MAX_LENGTH)


def assert_served_as_predicted(served, expected):
    assert served["answer"] == [p["answer"] for p in expected]
    assert served["answer_start"] == [-1 if p["start"] is None else p["start"] for p in expected]
    assert served["answer_end"] == [-1 if p["end"] is None else p["end"] for p in expected]
    np.testing.assert_allclose(served["score"], [p["score"] for p in expected], atol=1e-4)


def test_fresh_process_returns_the_in_memory_answers(model, exported):
    result = subprocess.run([sys.executable, "-c", LOAD_AND_RUN, str(exported), json.dumps([QUESTIONS, CONTEXTS])],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served, modules = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert modules == []  # tensorflow and tensorflow_text suffice
    expected = in_memory(model)
    answered = [p for p in expected if p["start"] is not None]
    assert 0 < len(answered) < len(expected)  # both branches: a span and no answer
    assert any(len(p["answer"]) > 1 for p in answered)
    assert_served_as_predicted(served, expected)
    for context, p in zip(CONTEXTS, expected):
        assert p["start"] is None or context[p["start"] : p["end"]] == p["answer"]


def test_a_v1_model_always_answers(model):
    import tensorflow as tf

    model.version_2 = False
    try:
        endpoints, _ = model.serving_signatures(MAX_LENGTH)
        serve_text, _ = endpoints["serving_default"]
        out = serve_text(tf.constant(QUESTIONS), tf.constant(CONTEXTS))
        served = {k: [x.decode() if isinstance(x, bytes) else x for x in v.numpy().tolist()] for k, v in out.items()}
        expected = in_memory(model)
    finally:
        model.version_2 = True
    assert all(p["start"] is not None for p in expected)
    assert_served_as_predicted(served, expected)


def test_serve_ids_gives_the_in_memory_logits(model, exported):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(str(exported))
    batch = model.tokenizer(QUESTIONS, CONTEXTS)
    out = loaded.signatures["serve_ids"](**{k: tf.constant(v) for k, v in batch.items()})
    expected = model(batch, training=False)
    for name in ("start_logits", "end_logits"):
        np.testing.assert_allclose(out[name], expected[name], atol=1e-5)
