"""`tfft train` on bad input: one clear message, exit code 2, no traceback, no run directory."""

import json
import subprocess
import sys

import pytest

from tests.conftest import FIXTURES

DATA = FIXTURES / "data"


def write_config(tmp_path, checkpoint, train=DATA / "reviews.jsonl", dev=DATA / "reviews.jsonl", extra=""):
    path = tmp_path / "run.yaml"
    path.write_text(
        f"run_dir: {tmp_path / 'run'}\n"
        f"model:\n  checkpoint: {checkpoint}\n"
        f"data:\n  train: {train}\n  dev: {dev}\n"
        f"training:\n  epochs: 1\n  batch_size: 8\n{extra}"
    )
    return path


def train(config, *overrides):
    sets = [arg for o in overrides for arg in ("--set", o)]
    return subprocess.run([sys.executable, "-m", "tfft.cli", "train", str(config), "--quiet", *sets],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"extra": "  learning_rat: 1.0e-4\n"}, r"run.yaml: unknown key 'training.learning_rat' (did you mean 'training.learning_rate'?)"),
        ({"extra": "  epochs: three\n"}, "'training.epochs' must be int, got 'three'"),
        ({"train": DATA / "bad_malformed.jsonl"}, "bad_malformed.jsonl, line"),
        ({"train": DATA / "bad_missing_column.jsonl"}, "bad_missing_column.jsonl"),
        ({"dev": DATA / "dev_unseen_label.jsonl"}, "dev_unseen_label.jsonl, line"),
        ({"train": DATA / "no_such_file.jsonl"}, "data.train: file not found"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, tiny_checkpoint, change, message):
    result = train(write_config(tmp_path, tiny_checkpoint, **change))
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_missing_checkpoint(tmp_path):
    result = train(write_config(tmp_path, tmp_path / "no_checkpoint"))
    assert result.returncode == 2 and "no such checkpoint directory" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_train_predict_evaluate_export(tmp_path, tiny_checkpoint):
    config = write_config(tmp_path, tiny_checkpoint)
    result = train(config, f"data.test={DATA / 'reviews.jsonl'}")
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    assert {"config.yaml", "labels.json", "best", "tensorboard", "metrics.json", "model.keras", "export"} <= {
        p.name for p in run.iterdir()
    }
    assert not (run / "backup").exists()  # a finished run leaves nothing to resume
    assert (run / "export" / "1" / "saved_model.pb").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["test"]["accuracy"] is not None
    assert "test metrics" in result.stdout and "Confusion matrix" in result.stdout

    predicted = subprocess.run([sys.executable, "-m", "tfft.cli", "predict", str(run), "a fine film", "dull"],
                               capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["a fine film", "dull"]
    assert all(r["label"] in ("negative", "positive") for r in rows)

    evaluated = subprocess.run([sys.executable, "-m", "tfft.cli", "evaluate", str(run), str(DATA / "reviews.csv")],
                               capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "accuracy" in evaluated.stdout

    again = train(config)
    assert again.returncode == 2 and "already holds a finished run" in again.stderr
