"""`tfft train/evaluate/predict/export` on a token-classification config, through the real CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

WNUT_DEV = Path(__file__).resolve().parents[3] / "data" / "ner-wnut16" / "dev.conll"


def sentences(count):
    return WNUT_DEV.read_text(encoding="utf-8").split("\n\n")[:count]


def write_data(tmp_path, name, blocks):
    path = tmp_path / name
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def write_config(tmp_path, checkpoint, train, dev):
    path = tmp_path / "ner.yaml"
    path.write_text(
        f"run_dir: {tmp_path / 'run'}\ntask: token_classification\n"
        f"model:\n  checkpoint: {checkpoint}\n"
        f"data:\n  train: {train}\n  dev: {dev}\n  max_length: 32\n  stride: 8\n"
        "training:\n  epochs: 1\n  batch_size: 8\n  log_every_steps: 2\n"
    )
    return path


def tfft(*args):
    return subprocess.run([sys.executable, "-m", "tfft.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_checkpoint):
    tmp_path = tmp_path_factory.mktemp("ner")
    train = write_data(tmp_path, "train.conll", sentences(40))
    dev = write_data(tmp_path, "dev.conll", sentences(12))
    result = tfft("train", write_config(tmp_path, tiny_checkpoint, train, dev))
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path, result


def test_train_writes_a_run_with_entity_metrics(trained):
    tmp_path, result = trained
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "token_classification" and metrics["steps"] > 0
    assert {"micro_f1", "per_type", "token_accuracy", "type_confusion"} <= set(metrics["dev"])
    assert "Entities (default mode, IOB2)" in result.stdout and "SavedModel for TF Serving" in result.stdout
    assert any(line.startswith("step 2/") for line in result.stdout.splitlines())
    assert json.loads((run / "labels.json").read_text())["labels"][0] == "O"
    assert (run / "best" / "best.json").is_file() and (run / "export" / "1" / "saved_model.pb").is_file()
    assert json.loads((run / "best" / "best.json").read_text())["monitor"] == "val_f1"


def test_evaluate_predict_and_export_a_run(trained):
    tmp_path, _ = trained
    run = tmp_path / "run"
    evaluated = tfft("evaluate", run, tmp_path / "dev.conll", "--quiet")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "micro avg" in evaluated.stdout and "token accuracy" in evaluated.stdout
    predicted = tfft("predict", run, "Barack Obama visited Paris", '{"text": "New York, São Paulo"}')
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [line["text"] for line in lines] == ["Barack Obama visited Paris", "New York, São Paulo"]
    for line in lines:
        assert all(line["text"][e["start"] : e["end"]] == e["text"] for e in line["entities"])
    exported = tfft("export", run)
    assert exported.returncode == 0 and exported.stdout.strip().endswith("export/2")


@pytest.mark.parametrize(
    "bad_line, message",
    [("Obama", "dev.conll, line 3"), ("Obama\tB-NOTATYPE", "dev.conll, line 3: tag 'B-NOTATYPE'"),
     ("Obama\tE-person", "dev.conll, line 3")],
)
def test_bad_rows_are_one_clear_error(tmp_path, tiny_checkpoint, bad_line, message):
    train = write_data(tmp_path, "train.conll", sentences(5))
    lines = sentences(1)[0].splitlines()
    dev = write_data(tmp_path, "dev.conll", ["\n".join(lines[:2] + [bad_line] + lines[2:])])
    result = tfft("train", write_config(tmp_path, tiny_checkpoint, train, dev), "--quiet")
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("tfft: error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_unknown_task_is_a_config_error(tmp_path, tiny_checkpoint):
    config = tmp_path / "bad.yaml"
    config.write_text(f"run_dir: {tmp_path / 'run'}\ntask: token_clasification\nmodel:\n  checkpoint: "
                      f"{tiny_checkpoint}\ndata:\n  train: x.conll\n")
    result = tfft("train", config, "--quiet")
    assert result.returncode == 2
    assert "unknown task 'token_clasification' (did you mean 'token_classification'?)" in result.stderr
