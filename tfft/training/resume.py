"""Resume an interrupted `model.fit` at the very step it stopped.

`BackupAndResume` extends `keras.callbacks.BackupAndRestore`, which in Keras 3 restores the
weights and the epoch but restarts that epoch from its first batch (so a mid-epoch backup
replays batches and the run ends with more updates than an uninterrupted one). This callback
also records how many batches of the epoch were done and, on resume, reads those batches from
the input without training on them, so the resumed run sees the same batches in the same order
and ends at the same `optimizer.iterations`. It also turns SIGTERM and SIGINT into "finish this
batch, save a backup, exit", so a preempted job loses nothing.

Data order must depend only on the epoch for the resumed run to see the same batches: an
unshuffled dataset, or `dataset.shuffle(..., seed=s)` re-created per process. A run resumed
on other data still resumes at the same step.
"""

import json
import logging
import os
import shutil
import signal
import threading
from pathlib import Path

import keras

from tfft.training.weights import load_weights, save_weights

logger = logging.getLogger("tfft")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(SystemExit):
    """Raised out of `fit` after a SIGTERM/SIGINT once the backup is saved.

    A `SystemExit` with code 128 + signal number (143 for SIGTERM, 130 for SIGINT), so a script
    that does not catch it exits quietly with the code a job scheduler expects.
    """

    def __init__(self, signum, backup_dir, step):
        super().__init__(128 + signum)
        self.signum = signum
        self.backup_dir = backup_dir
        self.step = step

    def __str__(self):
        return (
            f"training interrupted by {signal.Signals(self.signum).name} at step {self.step}; "
            f"backup saved in {self.backup_dir}; run the same command to resume"
        )


def _optimizer_step(model):
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


class _SkipBatches:
    """A stand-in `train_function` that reads batches from the input without training."""

    def __init__(self, original, count):
        self.original = original
        self.count = count

    def __call__(self, iterator):
        for _ in range(self.count):
            iterator.get_next()
        return {}


class BackupAndResume(keras.callbacks.BackupAndRestore):
    """Backs up weights and optimizer state; a re-run of the same `fit` resumes at the same step.

    With PEFT adapters a backup holds only the adapters' part (`tfft.training.weights`).

    The backup is written every `save_freq` batches, at every epoch end, and when SIGTERM or
    SIGINT arrives (after the current batch, or after the epoch end if it arrives during
    validation); it is deleted when `fit` completes. A second signal stops at once.

    Example:
        >>> callbacks = [BackupAndResume(run_dir / "backup", save_freq=500), ...]
        >>> model.fit(train, epochs=3, callbacks=callbacks)   # re-run after a kill: resumes

    Args:
        backup_dir: a directory for this run's backup only.
        save_freq: batches between backups, or "epoch" for epoch ends only.
        handle_signals: install the SIGTERM/SIGINT handlers during `fit` (main thread only).
    """

    def __init__(self, backup_dir, save_freq="epoch", handle_signals=True):
        super().__init__(str(backup_dir), save_freq=save_freq, delete_checkpoint=True, double_checkpoint=True)
        self.handle_signals = handle_signals
        self._batches_done = 0
        self._skip = 0
        self._stop_signal = None
        self._previous_handlers = {}

    # --- signals -------------------------------------------------------------------------------

    def _install_handlers(self):
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for signum in _SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_handlers(self):
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def _on_signal(self, signum, frame):
        if self._stop_signal is not None:  # Second signal: the user wants out now.
            self._restore_handlers()
            signal.raise_signal(signum)
            return
        self._stop_signal = signum
        logger.warning("%s received: stopping after this batch and saving a backup", signal.Signals(signum).name)

    # --- Keras hooks ---------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._stop_signal = None
        self._skip = 0
        if isinstance(self.model.train_function, _SkipBatches):  # Left over from a failed fit.
            self.model.train_function = self.model.train_function.original
        super().on_train_begin(logs)  # Restores the backup; calls _load_model.
        self._install_handlers()

    def on_epoch_begin(self, epoch, logs=None):
        self._batches_done = 0
        if self._stop_signal is not None:  # Arrived during the last epoch end; its backup is saved.
            self._stop(self._stop_signal, saved=True)

    def on_train_batch_begin(self, batch, logs=None):
        skipper = self.model.train_function
        if batch < self._skip:
            original = skipper.original if isinstance(skipper, _SkipBatches) else skipper
            count = min(self.model.steps_per_execution, self._skip - batch)
            self.model.train_function = _SkipBatches(original, count)
        elif isinstance(skipper, _SkipBatches):
            self.model.train_function = skipper.original
            self._skip = 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches_done = max(batch + 1, self._skip)  # Skipped batches were trained before.
        if self._stop_signal is not None:
            self._stop(self._stop_signal)
        if batch >= self._skip:
            super().on_train_batch_end(batch, logs)  # Saves every save_freq batches.

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        self._batches_done = 0
        self._save_model()  # Every epoch end, so the best-checkpoint state and the backup agree.

    def on_train_end(self, logs=None):
        self._restore_handlers()
        self.model._initial_epoch = None  # Keras keeps it; a later fit on this model starts fresh.
        super().on_train_end(logs)

    def _stop(self, signum, saved=False):
        if isinstance(self.model.train_function, _SkipBatches):
            self.model.train_function = self.model.train_function.original
        if not saved:
            self._save_model()
        self._restore_handlers()
        error = TrainingInterrupted(signum, self.backup_dir, _optimizer_step(self.model))
        logger.warning("%s", error)
        raise error

    # --- the backup ----------------------------------------------------------------------------

    def _save_model(self):
        """Writes weights then metadata, each atomically, keeping the previous pair as `.bkp`."""
        os.makedirs(self.backup_dir, exist_ok=True)
        for path, previous in (
            (self._weights_path, self._prev_weights_path),
            (self._training_metadata_path, self._prev_training_metadata_path),
        ):
            if os.path.exists(path):
                shutil.copyfile(path, previous)
        temporary = self._weights_path.replace(".weights.h5", ".tmp.weights.h5")
        save_weights(self.model, temporary)
        os.replace(temporary, self._weights_path)
        metadata = {
            "epoch": self._current_epoch,
            "batches_done": self._batches_done,
            "step": _optimizer_step(self.model),
        }
        Path(self._training_metadata_path + ".tmp").write_text(json.dumps(metadata))
        os.replace(self._training_metadata_path + ".tmp", self._training_metadata_path)

    def _load_model(self):
        """Restores the newest backup whose weights and metadata agree on the step."""
        if not os.path.exists(self._training_metadata_path):
            return
        pairs = [
            (self._weights_path, self._training_metadata_path),
            (self._prev_weights_path, self._prev_training_metadata_path),
        ]
        for weights_path, metadata_path in pairs:
            if not (os.path.exists(weights_path) and os.path.exists(metadata_path)):
                continue
            metadata = json.loads(Path(metadata_path).read_text())
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            try:
                load_weights(self.model, weights_path)
            except (OSError, ValueError) as error:  # A backup cut short by a crash.
                logger.warning("backup %s unreadable (%s); trying the previous one", weights_path, error)
                continue
            if _optimizer_step(self.model) != metadata.get("step"):
                logger.warning("backup %s does not match its metadata; trying the previous one", weights_path)
                continue
            self._current_epoch = metadata["epoch"]
            self._skip = metadata.get("batches_done", 0)
            self.model._initial_epoch = metadata["epoch"]
            logger.info(
                "resuming from %s: epoch %d, batch %d, step %d",
                self.backup_dir,
                metadata["epoch"] + 1,
                self._skip,
                metadata["step"],
            )
            return
        raise OSError(f"{self.backup_dir}: no readable backup (weights and metadata disagree or are corrupt)")
