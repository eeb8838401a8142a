"""`tfft train` end to end: bad input (one clear message, exit code 2, no traceback, no run
directory), bad rows skipped and counted, and a SIGTERM'd run resumed by the same command."""

import json
import math
import re
import signal
import subprocess
import sys
import time

import numpy as np
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


def train_command(config, *overrides):
    sets = [arg for o in overrides for arg in ("--set", o)]
    return [sys.executable, "-m", "tfft.cli", "train", str(config), "--quiet", *sets]


def train(config, *overrides):
    return subprocess.run(train_command(config, *overrides), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"extra": "  learning_rat: 1.0e-4\n"}, r"run.yaml: unknown key 'training.learning_rat' (did you mean 'training.learning_rate'?)"),
        ({"extra": "  epochs: three\n"}, "'training.epochs' must be int, got 'three'"),
        ({"train": DATA / "bad_malformed.jsonl"}, "bad_malformed.jsonl, line"),
        ({"train": DATA / "bad_missing_column.jsonl"}, "bad_missing_column.jsonl"),
        ({"train": DATA / "bad_empty_text.jsonl"}, "bad_empty_text.jsonl, line 3: column 'text' is empty"),
        ({"dev": DATA / "bad_empty_text.csv"}, "bad_empty_text.csv, line 4: column 'text' is empty"),
        ({"dev": DATA / "dev_unseen_label.jsonl"}, "dev_unseen_label.jsonl, line"),
        ({"train": DATA / "no_such_file.jsonl"}, "data.train: file not found"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, tiny_checkpoint, change, message):
    result = train(write_config(tmp_path, tiny_checkpoint, **change))
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert result.stderr.count("tfft: error:") == 1
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
    # Inference artifacts hold the weights once, without AdamW's two moments (which would triple them).
    weights = (tiny_checkpoint / "model.safetensors").stat().st_size
    variables = sum(f.stat().st_size for f in (run / "export" / "1" / "variables").iterdir())
    tokenizer_files = sum(f.stat().st_size for f in tiny_checkpoint.glob("*") if f.suffix != ".safetensors")
    assert (run / "model.keras").stat().st_size < 1.2 * weights + tokenizer_files
    assert variables < 1.2 * weights and (run / "best" / "best.weights.h5").stat().st_size < 1.2 * weights
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["test"]["accuracy"] is not None
    assert "test metrics" in result.stdout and "Confusion matrix" in result.stdout

    predicted = subprocess.run([sys.executable, "-m", "tfft.cli", "predict", str(run), "a fine film", "dull"],
                               capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["a fine film", "dull"]
    assert all(r["label"] in ("negative", "positive") for r in rows)

    texts = tmp_path / "texts.txt"  # a file of several batches: JSON lines on stdout, progress on stderr
    texts.write_text("".join(f"review number {i}\n" for i in range(20)))
    predicted = subprocess.run([sys.executable, "-m", "tfft.cli", "predict", str(run), "--file", str(texts),
                                "--batch-size", "8"], capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert [json.loads(line)["text"] for line in predicted.stdout.splitlines()] == [
        f"review number {i}" for i in range(20)
    ]
    assert "20/20" in predicted.stderr

    evaluated = subprocess.run([sys.executable, "-m", "tfft.cli", "evaluate", str(run), str(DATA / "reviews.csv")],
                               capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "accuracy" in evaluated.stdout

    again = train(config)
    assert again.returncode == 2 and "already holds a finished run" in again.stderr


def test_progress_into_a_pipe_is_a_line_every_n_steps(tmp_path, tiny_checkpoint):
    command = [arg for arg in train_command(write_config(tmp_path, tiny_checkpoint), "training.epochs=2",
                                            "training.log_every_steps=3", "export.enabled=false")
               if arg != "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "\r" not in result.stdout and "\b" not in result.stdout  # no live-bar redraws in a log file
    steps = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    total = json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"]
    assert [int(line.split()[1].split("/")[0]) for line in steps] == list(range(3, total + 1, 3))
    assert all(f"/{total} (epoch " in line and " examples/s" in line and "loss " in line for line in steps)
    assert "ETA " in steps[0]
    epochs = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(" done")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all("val_accuracy " in line for line in epochs)  # dev metrics of that epoch


def test_bad_rows_are_skipped_and_counted(tmp_path, tiny_checkpoint):
    lines = (DATA / "reviews.jsonl").read_text().splitlines()
    train_file = tmp_path / "train.jsonl"
    bad = [lines[4][:-7], json.dumps({"text": "", "label": "positive"})]  # lines 5 and 6: cut short, empty text
    train_file.write_text("\n".join(lines[:4] + bad + lines[4:]) + "\n")

    result = train(write_config(tmp_path, tiny_checkpoint, train=train_file), "data.on_bad_row=skip",
                   "export.enabled=false")
    assert result.returncode == 0, result.stderr[-3000:]
    # Seen with --quiet, once, naming the file and each row.
    assert result.stderr.count("bad rows skipped") == 1
    assert f"tfft: {train_file}: 2 bad rows skipped: line 5: malformed JSON" in result.stderr
    assert "line 6: column 'text' is empty" in result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["skipped_rows"] == {"train": 2}


def wait_for(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def steps_per_epoch(train_file, checkpoint, batch_size, bucket):
    """Batches per epoch of the pipeline `tfft train` builds (bucketing makes a partial batch per bucket)."""
    from tfft.data import LabelVocab, make_dataset, read_examples
    from tfft.tokenizers import Tokenizer

    examples = read_examples(train_file)
    dataset = make_dataset(examples, Tokenizer.from_pretrained(checkpoint), LabelVocab.from_examples(examples),
                           batch_size=batch_size, shuffle=True, bucket_boundaries="auto" if bucket else None)
    return int(dataset.cardinality())


@pytest.mark.parametrize("bucket", [False, True], ids=["unbucketed", "bucketed"])
def test_sigterm_then_the_same_command_resumes_to_the_same_step(tmp_path, tiny_checkpoint, bucket):
    rows, epochs, batch_size = 1000, 3, 8
    lines = (DATA / "reviews.jsonl").read_text().splitlines()
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("\n".join((lines * math.ceil(rows / len(lines)))[:rows]) + "\n")
    total_steps = epochs * steps_per_epoch(train_file, tiny_checkpoint, batch_size, bucket)
    if not bucket:
        assert total_steps == epochs * math.ceil(rows / batch_size)
    # Backups every 10 steps; the first lands ~365 steps before the end, seconds of training on any machine.
    command = train_command(write_config(tmp_path, tiny_checkpoint, train=train_file), f"training.epochs={epochs}",
                            "training.checkpoint_every_steps=10", f"data.bucket_by_length={str(bucket).lower()}",
                            "export.enabled=false")
    run = tmp_path / "run"

    log_path = tmp_path / "interrupted.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            # The metadata is written after the weights: once it exists, a whole backup does.
            backed_up = wait_for(lambda: (run / "backup" / "training_metadata.json").exists()
                                 or process.poll() is not None, timeout=300)
            assert backed_up and process.poll() is None, log_path.read_text()[-3000:]
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = log_path.read_text()
    assert returncode == 128 + signal.SIGTERM, output[-3000:]
    stopped = re.search(r"tfft: training interrupted by SIGTERM at step (\d+); backup saved in .*; "
                        r"run the same command to resume", output)
    assert stopped, output[-3000:]
    step = int(stopped.group(1))
    assert 10 <= step < total_steps
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["step"] == step
    assert not (run / "metrics.json").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(rf"tfft: resuming from .*: epoch \d+, batch \d+, step {step}\n", resumed.stderr), \
        resumed.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["steps"] == total_steps
    assert not (run / "backup").exists()


def test_sentence_pairs_train_predict_and_export_both_strings(tmp_path, tiny_checkpoint):
    pairs = DATA / "review_pairs.jsonl"
    result = train(write_config(tmp_path, tiny_checkpoint, train=pairs, dev=pairs), "data.text_pair_column=text_pair")
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    predicted = subprocess.run(
        [sys.executable, "-m", "tfft.cli", "predict", str(run), '{"text": "A fine film.", "text_pair": "Dull."}',
         "A fine film."], capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 2  # the second input has no text_pair: one clear error, nothing printed
    assert "argument 2: 'text_pair' must be a non-empty string" in predicted.stderr and not predicted.stdout
    predicted = subprocess.run(
        [sys.executable, "-m", "tfft.cli", "predict", str(run), '{"text": "A fine film.", "text_pair": "Dull."}'],
        capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    (row,) = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert row["text_pair"] == "Dull." and row["label"] in ("same", "different")

    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(str(run / "export" / "1"))
    signature = loaded.signatures["serving_default"]
    assert sorted(signature.structured_input_signature[1]) == ["text", "text_pair"]
    served = signature(text=tf.constant(["A fine film."]), text_pair=tf.constant(["Dull."]))
    np.testing.assert_allclose(served["probabilities"].numpy()[0], list(row["probabilities"].values()), atol=1e-5)
