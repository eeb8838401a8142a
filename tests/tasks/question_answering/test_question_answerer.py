"""`QuestionAnswerer` and the `question_answering` task: transformers interop, training, windowed prediction,
saving, and the in-graph span choice against `decode_answers`."""

import numpy as np
import pytest
import tensorflow as tf

from tests.encoders.conftest import ENCODER_FIXTURES, reference, reference_inputs
from tests.tasks.hf_models import perturbed_hf_model
from tests.tasks.question_answering.conftest import QA_DATA
from tfft.errors import DataError
from tfft.tasks.question_answering.data import QAExamples, read_squad
from tfft.tasks.question_answering.decoding import decode_answers
from tfft.tasks.question_answering.features import QAFeatures
from tfft.tasks.question_answering.model import QuestionAnswerer
from tfft.tasks.question_answering.serving import best_spans


def qa_task(checkpoint, tmp_path, version_2=True, train=QA_DATA / "squad_v2.json", **data):
    from tfft.config import config_from_dict
    from tfft.tasks import get_task

    config = config_from_dict({
        "run_dir": str(tmp_path / "run"), "task": "question_answering",
        "model": {"checkpoint": str(checkpoint), "version_2": version_2},
        "data": {"train": str(train), "max_length": 64, "doc_stride": 16, **data},
        "training": {"batch_size": 8},
    })
    return get_task("question_answering")(config)


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    model = QuestionAnswerer.from_pretrained(tiny_checkpoint, version_2=True)
    rng = np.random.default_rng(0)  # a random head, so answers vary from question to question
    model.qa_outputs.kernel.assign(rng.normal(0, 2.0, model.qa_outputs.kernel.shape).astype("float32"))
    return model


@pytest.mark.requires("torch")
@pytest.mark.parametrize("name", ["bert", "roberta", "distilbert", "electra", "albert", "xlm_roberta"])
def test_transformers_checkpoint_loads_and_saves_back(name, tmp_path):
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(ENCODER_FIXTURES / name)
    theirs = perturbed_hf_model(transformers.AutoModelForQuestionAnswering, config)
    theirs.save_pretrained(tmp_path / "theirs")
    inputs = reference_inputs(reference(name))
    if name == "distilbert":
        inputs = {k: v for k, v in inputs.items() if k != "token_type_ids"}

    def torch_logits(model):
        with torch.no_grad():
            out = model.eval()(**{k: torch.tensor(v, dtype=torch.long) for k, v in inputs.items()})
        return out.start_logits.numpy(), out.end_logits.numpy()

    def tfft_logits(model):
        out = model(inputs, training=False)
        return np.asarray(out["start_logits"]), np.asarray(out["end_logits"])

    ours = QuestionAnswerer.from_pretrained(tmp_path / "theirs", tokenizer=False)
    assert ours.encoder.loading_report.unused == [] and ours.encoder.loading_report.newly_initialized == []
    for got, expected in zip(tfft_logits(ours), torch_logits(theirs)):
        np.testing.assert_allclose(got, expected, atol=1e-5)

    ours.save_pretrained(tmp_path / "ours")
    again, info = transformers.AutoModelForQuestionAnswering.from_pretrained(
        tmp_path / "ours", attn_implementation="eager", output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]), info
    assert type(again).__name__ == type(theirs).__name__
    for got, expected in zip(torch_logits(again), tfft_logits(ours)):
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_fit_lowers_the_loss_and_evaluate_gives_squad_metrics(tiny_checkpoint, tmp_path):
    import keras

    task = qa_task(tiny_checkpoint, tmp_path)
    train = task.read(task.config.data.train, "train")
    task.check(train)
    model = task.build_model(tiny_checkpoint)
    assert model.version_2 and model.encoder.loading_report.unused == []
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    dataset = task.dataset(model, train, training=True)
    _, targets = next(iter(dataset))
    assert set(targets) == {"start_logits", "end_logits"} and targets["start_logits"].shape == (8,)
    history = model.fit(dataset, epochs=3, verbose=0, shuffle=False).history["loss"]
    assert history[-1] < 0.7 * history[0]

    metrics = task.evaluate(model, train)
    assert metrics["task"] == "question_answering" and metrics["total"] == 17
    assert {"exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_f1",
            "best_f1_thresh"} <= set(metrics)
    task.after_fit(model, {"train": train, "dev": train})
    assert model.null_threshold == metrics["best_f1_thresh"]
    assert task.evaluate(model, train)["f1"] == pytest.approx(metrics["best_f1"])
    assert "HasAns" in task.format_report(metrics) and "val_f1" not in task.scalar_metrics(metrics)
    assert set(task.scalar_metrics(metrics)) >= {"exact", "f1", "best_f1"}


def test_a_v1_model_rejects_unanswerable_questions(tiny_checkpoint, tmp_path):
    task = qa_task(tiny_checkpoint, tmp_path, version_2=False)
    examples = task.read(QA_DATA / "squad_v2.json", "dev")
    impossible = examples.ids[examples.is_impossible.index(True)]
    with pytest.raises(DataError, match=rf"squad_v2.json, question id {impossible}: .*model.version_2"):
        task.check(examples)
    task.check(task.read(QA_DATA / "squad_v1.json", "dev"))


def test_predict_reads_long_contexts_in_windows(model):
    v2 = read_squad(QA_DATA / "squad_v2.json")
    longest = max(range(len(v2)), key=lambda i: len(v2.contexts[i]))
    questions, contexts = [v2.questions[longest], "Who?"], [v2.contexts[longest], "Gustave Eiffel built it."]
    for max_length, doc_stride in ((48, 8), (128, 32)):
        results = model.predict_answers(questions, contexts, max_length=max_length, doc_stride=doc_stride)
        for context, result in zip(contexts, results):
            assert set(result) == {"answer", "start", "end", "score"} and isinstance(result["score"], float)
            if result["start"] is None:
                assert result["answer"] == ""
            else:
                assert context[result["start"] : result["end"]] == result["answer"] != ""
    single = model.predict_answers("Who?", "Gustave Eiffel built it.", max_length=32, doc_stride=8)
    assert single == model.predict_answers(["Who?"], ["Gustave Eiffel built it."], max_length=32, doc_stride=8)[0]


def test_keras_file_keeps_the_threshold_and_the_tokenizer(model, tmp_path):
    import keras

    model.null_threshold = 1.25
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    assert (loaded.version_2, loaded.null_threshold, loaded.max_answer_length, loaded.n_best,
            loaded.question_first) == (True, 1.25, 30, 20, True)
    args = (["Where is the tower?"], ["The Eiffel Tower is in Paris, France."])
    assert loaded.predict_answers(*args, doc_stride=32) == model.predict_answers(*args, doc_stride=32)
    model.null_threshold = 0.0


def _random_windows(rng, rows, seq):
    """Random logits and windows: [CLS] question [SEP] context [SEP] padding, contexts of one-char
    tokens separated by spaces, with a few zero-width tokens; the first 10 rows without context."""
    start = rng.normal(0, 3, (rows, seq)).astype(np.float32)
    end = rng.normal(0, 3, (rows, seq)).astype(np.float32)
    lengths = rng.integers(6, seq + 1, rows)
    question = rng.integers(1, 4, rows)
    lengths[:10] = question[:10] + 3  # no context token: nothing qualifies
    sequence_ids = np.full((rows, seq), -1, np.int32)
    starts = np.zeros((rows, seq), np.int32)
    ends = np.zeros((rows, seq), np.int32)
    windows = []
    for r in range(rows):
        context = np.arange(question[r] + 2, lengths[r] - 1)
        sequence_ids[r, 1 : question[r] + 1] = 0
        sequence_ids[r, context] = 1
        starts[r, context] = 2 * np.arange(len(context))
        ends[r, context] = starts[r, context] + (rng.uniform(size=len(context)) > 0.1)
        offsets = np.full((lengths[r], 2), -1, np.int32)
        offsets[context, 0], offsets[context, 1] = starts[r, context], ends[r, context]
        windows.append(offsets)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int32)
    return start, end, sequence_ids, starts, ends, mask, windows


@pytest.mark.parametrize("n_best, max_answer_length", [(20, 30), (3, 4), (1, 2)])
def test_in_graph_span_choice_equals_decode_answers(n_best, max_answer_length):
    rng = np.random.default_rng(n_best)
    rows, seq = 200, 24
    start, end, sequence_ids, starts, ends, mask, windows = _random_windows(rng, rows, seq)
    found, first, last, score = best_spans(
        tf.constant(start), tf.constant(end), tf.constant(sequence_ids == 1), tf.constant(starts),
        tf.constant(ends), tf.constant(mask), n_best=n_best, max_answer_length=max_answer_length)
    examples = QAExamples(ids=[str(r) for r in range(rows)], questions=["q"] * rows, contexts=["x" * 64] * rows,
                          answers=[[] for _ in range(rows)], is_impossible=[False] * rows, titles=[None] * rows,
                          locations=[f"row {r}" for r in range(rows)])
    features = QAFeatures(input_ids=[np.zeros(len(w), np.int32) for w in windows], token_type_ids=[],
                          offsets=windows, example_index=np.arange(rows), cls_index=np.zeros(rows, np.int32))
    decoded = decode_answers(examples, features, list(start), list(end), n_best=n_best,
                             max_answer_length=max_answer_length)
    assert 0 < int(tf.reduce_sum(tf.cast(found, tf.int32))) < rows  # some rows have no qualifying span
    for r, prediction in enumerate(decoded):
        assert bool(found[r]) == (prediction["start"] is not None)
        if prediction["start"] is not None:
            assert (starts[r, first[r]], ends[r, last[r]]) == (prediction["start"], prediction["end"])
            assert float(score[r]) == pytest.approx(prediction["score"], abs=1e-5)
