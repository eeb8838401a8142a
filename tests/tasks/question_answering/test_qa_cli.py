"""`tfft train/evaluate/predict` on a question answering config, through the real CLI."""

import json
import subprocess
import sys

import pytest

from tests.tasks.question_answering.conftest import QA_DATA

SQUAD_V2 = QA_DATA / "squad_v2.json"
INPUTS = [{"question": "Where is the tower?", "context": "The Eiffel Tower is in Paris, France."},
          {"question": "Who built it?", "context": "Gustave Eiffel's company built the tower in 1889 for the fair."}]


def write_config(tmp_path, checkpoint, train, dev):
    path = tmp_path / "qa.yaml"
    path.write_text(
        f"run_dir: {tmp_path / 'run'}\ntask: question_answering\n"
        f"model:\n  checkpoint: {checkpoint}\n  version_2: true\n"
        f"data:\n  train: {train}\n  dev: {dev}\n  max_length: 64\n  doc_stride: 16\n"
        "training:\n  epochs: 1\n  batch_size: 8\n  log_every_steps: 2\n"
    )
    return path


def tfft(*args):
    return subprocess.run([sys.executable, "-m", "tfft.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("tfft: error:")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_checkpoint):
    tmp_path = tmp_path_factory.mktemp("qa")
    result = tfft("train", write_config(tmp_path, tiny_checkpoint, SQUAD_V2, SQUAD_V2))
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / "run", result


def test_train_writes_a_run_with_squad_metrics(trained):
    run, result = trained
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "question_answering" and metrics["steps"] > 0
    assert {"exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_f1",
            "null_threshold"} <= set(metrics["dev"])
    assert metrics["dev"]["total"] == 17 and metrics["dev"]["null_threshold"] == metrics["dev"]["best_f1_thresh"]
    assert "HasAns" in result.stdout and "SavedModel for TF Serving" in result.stdout
    assert json.loads((run / "best" / "best.json").read_text())["monitor"] == "val_f1"
    assert (run / "export" / "1" / "saved_model.pb").is_file()


def predictions(run):
    predicted = tfft("predict", run, *map(json.dumps, INPUTS))
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [{k: line[k] for k in ("question", "context")} for line in lines] == INPUTS
    for line in lines:
        assert {"answer", "start", "end", "score"} <= set(line) and isinstance(line["score"], float)
        if line["start"] is None:  # SQuAD v2: no answer
            assert line["answer"] == "" and line["end"] is None
        else:
            assert line["context"][line["start"] : line["end"]] == line["answer"] != ""
    return lines


def test_a_v1_run_answers_every_question(tmp_path, tiny_checkpoint):
    config = write_config(tmp_path, tiny_checkpoint, QA_DATA / "squad_v1.json", SQUAD_V2)
    result = tfft("train", config, "--quiet", "--set", "model.version_2=false", "--set", "data.dev=null",
                  "--set", "export.enabled=false")
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(line["start"] is not None for line in predictions(tmp_path / "run"))
    evaluated = tfft("evaluate", tmp_path / "run", QA_DATA / "squad_v1.json", "--quiet")
    assert evaluated.returncode == 0 and "HasAns" not in evaluated.stdout and "exact" in evaluated.stdout
    wrong = tfft("evaluate", tmp_path / "run", SQUAD_V2, "--quiet")
    (error,) = error_lines(wrong)
    assert wrong.returncode == 2 and "squad_v2.json, question id" in error and "model.version_2" in error


def test_predict_and_evaluate_a_run(trained):
    run, _ = trained
    predictions(run)
    plain = tfft("predict", run, "Where is the tower?")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    (error,) = error_lines(plain)
    assert "argument 1" in error and "'context'" in error

    evaluated = tfft("evaluate", run, SQUAD_V2, "--quiet")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "HasAns" in evaluated.stdout and "NoAns" in evaluated.stdout and "exact" in evaluated.stdout


def _nested(**change):
    """The v2 fixture with its first question changed (`change` updates it; `answer_start` its first answer)."""
    document = json.loads(SQUAD_V2.read_text(encoding="utf-8"))
    qa = document["data"][0]["paragraphs"][0]["qas"][0]
    if "answer_start" in change:
        qa["answers"][0]["answer_start"] = change.pop("answer_start")
    qa.update(change)
    return document, qa["id"]


def _flat_without_context():
    document, id = _nested()
    paragraph = document["data"][0]["paragraphs"][0]
    qa = paragraph["qas"][0]
    record = {"id": id, "title": "Beijing", "question": qa["question"],
              "answers": {"text": [a["text"] for a in qa["answers"]],
                          "answer_start": [a["answer_start"] for a in qa["answers"]]}}
    return {"data": [record]}, id


@pytest.mark.parametrize("make, message", [
    (lambda: _nested(answer_start=3), "answer_start 3 does not point at"),
    (_flat_without_context, "has no 'context'"),
    (lambda: _nested(question=" "), "'question' is empty"),
], ids=["answer_start", "no_context", "empty_question"])
def test_bad_questions_are_one_clear_error(tmp_path, tiny_checkpoint, make, message):
    document, id = make()
    dev = tmp_path / "dev.json"
    dev.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    result = tfft("train", write_config(tmp_path, tiny_checkpoint, SQUAD_V2, dev), "--quiet")
    assert result.returncode == 2, result.stderr[-3000:]
    (error,) = error_lines(result)
    assert f"dev.json, question id {id}: " in error and message in error and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
