"""Interrupt and resume: the run ends at the step and weights of an uninterrupted one.

SIGTERM goes to a real training process (resume_script.py) that is then run again; SIGINT and a
crash are tested in this process, a new model object standing for the re-run.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.training.tiny import build_tiny_classifier, toy_dataset
from tfft.training import BackupAndResume, TrainingInterrupted, create_optimizer

SCRIPT = Path(__file__).with_name("resume_script.py")
TOTAL_STEPS = 18


def run_script(run_dir, out, *extra):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(run_dir), str(out), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result, json.loads(out.read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    result, out = run_script(root / "run", root / "out.json")
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run", out


def test_sigterm_then_rerun_resumes_at_the_same_step(tmp_path, uninterrupted):
    reference_dir, reference = uninterrupted
    command = (tmp_path / "run", tmp_path / "out.json", "--interrupt-at-step", "8")  # Mid-epoch 2.

    first, stopped = run_script(*command)
    assert first.returncode == 143, first.stderr[-3000:]  # 128 + SIGTERM
    assert "run the same command to resume" in first.stderr
    assert 8 <= stopped["step"] < TOTAL_STEPS
    metadata = json.loads((tmp_path / "run" / "backup" / "training_metadata.json").read_text())
    assert metadata["step"] == stopped["step"] and metadata["epoch"] == 1 and metadata["batches_done"] > 0

    second, resumed = run_script(*command)
    assert second.returncode == 0, second.stderr[-3000:]
    assert resumed["step"] == reference["step"] == TOTAL_STEPS
    assert resumed["losses"][0][0] == stopped["step"] + 1  # Picks up at the next step.
    assert not (tmp_path / "run" / "backup").exists()  # Deleted once fit completes.
    # Same batches in the same order: the weights match the uninterrupted run's.
    for a, b in zip(resumed["weights"], reference["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # After the resumed epoch, the epoch-mean losses are the same as uninterrupted.
    reference_losses = dict(map(tuple, reference["losses"]))
    for step, loss in resumed["losses"]:
        if step > 12:
            assert loss == pytest.approx(reference_losses[step], rel=1e-5)
    # The best checkpoint's state survived the interruption.
    best = json.loads((tmp_path / "run" / "best" / "best.json").read_text())
    reference_best = json.loads((reference_dir / "best" / "best.json").read_text())
    assert (best["best"], best["best_epoch"]) == (reference_best["best"], reference_best["best_epoch"])
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["step"] == TOTAL_STEPS


# In-process runs: a new model object with the same seed stands for the re-run command.


def _fit(backup_dir, *extra_callbacks, steps_per_execution=1):
    model = build_tiny_classifier()
    model.compile(
        optimizer=create_optimizer(model, 1e-2, total_steps=TOTAL_STEPS),
        loss="sparse_categorical_crossentropy",
        steps_per_execution=steps_per_execution,
    )
    callbacks = [BackupAndResume(backup_dir, save_freq=2), *extra_callbacks]
    model.fit(toy_dataset(8), epochs=3, verbose=0, shuffle=False, callbacks=callbacks)
    return model


class AtStep(keras.callbacks.Callback):
    """Calls `action` when the optimizer reaches `step`."""

    def __init__(self, step, action):
        super().__init__()
        self.step, self.action = step, action

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            self.action()


@pytest.fixture(scope="module")
def reference_weights(tmp_path_factory):
    return _fit(tmp_path_factory.mktemp("reference")).get_weights()


@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_sigint_stops_after_the_batch_and_restores_the_handler(tmp_path, steps_per_execution, reference_weights):
    handler = signal.getsignal(signal.SIGINT)
    interrupt = AtStep(8, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(TrainingInterrupted) as stopped:
        _fit(tmp_path / "run", interrupt, steps_per_execution=steps_per_execution)
    assert stopped.value.code == 130
    assert stopped.value.step == 8 + steps_per_execution  # The signal came after this batch's check.
    assert signal.getsignal(signal.SIGINT) is handler
    resumed = _fit(tmp_path / "run", steps_per_execution=steps_per_execution)
    assert int(resumed.optimizer.iterations.numpy()) == TOTAL_STEPS
    for a, b in zip(resumed.get_weights(), reference_weights):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_crash_resumes_from_the_last_backup_and_survives_a_torn_one(tmp_path):
    def crash():
        raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        _fit(tmp_path / "run", AtStep(9, crash))  # Backups every 2 batches: the last is at step 8.
    metadata = json.loads((tmp_path / "run" / "training_metadata.json").read_text())
    assert metadata == {"epoch": 1, "batches_done": 2, "step": 8}
    # A crash while writing leaves weights that disagree with the metadata: the previous pair is used.
    (tmp_path / "run" / "latest.weights.h5").write_bytes(b"torn")
    resumed = _fit(tmp_path / "run")
    assert int(resumed.optimizer.iterations.numpy()) == TOTAL_STEPS
