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
        worker: the `tfft.distribute.WorkerRole` of this process in a multi-worker run. Every
            worker restores from `backup_dir` (storage all workers read) and saves at the same
            steps, but only the chief writes there; another worker writes its backup to its own
            `backup_dir/workertemp_<i>` and removes it, as TensorFlow's multi-worker
            checkpointing does. All workers check that they resumed at the same step.
    """

    def __init__(self, backup_dir, save_freq="epoch", handle_signals=True, worker=None):
        chief = worker is None or worker.is_chief
        super().__init__(str(backup_dir), save_freq=save_freq, delete_checkpoint=chief, double_checkpoint=True)
        self.worker = worker
        self.write_dir = self.backup_dir if chief else os.path.join(self.backup_dir, f"workertemp_{worker.index}")
        self.saved_step = None  # the step of the newest backup this fit wrote or resumed from
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
        if self.worker is not None and self.worker.multi_worker:
            self._check_same_step()
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
        if self.worker is not None and self.worker.multi_worker:
            from tfft.distribute import wait_for_all_workers

            # The workers reach this unevenly after the last step: the chief removes the backup
            # (with the others' workertemp_<i>) only when every worker's last save is done.
            wait_for_all_workers(self.model.distribute_strategy)
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

    def _check_same_step(self):
        """Every worker must resume at the same step, or the first all-reduce would mix states."""
        import tensorflow as tf

        strategy = self.model.distribute_strategy
        step = _optimizer_step(self.model)
        mine = tf.one_hot(self.worker.index, self.worker.num_workers, dtype=tf.int64) * step
        local_replicas = len(strategy.extended.worker_devices)  # a plain tensor counts once per replica
        steps = [int(s) // local_replicas for s in strategy.reduce("SUM", mine, axis=None).numpy()]
        if len(set(steps)) > 1:
            found = ", ".join(f"worker {i}: {s}" for i, s in enumerate(steps))
            raise OSError(f"the workers resumed at different steps ({found}): every worker must read the chief's "
                          f"backup in {self.backup_dir}, so run_dir must be on storage all workers share (an NFS "
                          "or ReadWriteMany volume, Vertex AI's /gcs/ mount)")

    # --- the backup ----------------------------------------------------------------------------

    def _save_model(self):
        """Writes weights then metadata, each atomically, keeping the previous pair as `.bkp`."""
        directory = self.write_dir
        paths = [os.path.join(directory, os.path.basename(p)) for p in (
            self._weights_path, self._prev_weights_path, self._training_metadata_path,
            self._prev_training_metadata_path)]
        weights, previous_weights, metadata_path, previous_metadata = paths
        os.makedirs(directory, exist_ok=True)
        for path, previous in ((weights, previous_weights), (metadata_path, previous_metadata)):
            if os.path.exists(path):
                shutil.copyfile(path, previous)
        temporary = weights.replace(".weights.h5", ".tmp.weights.h5")
        save_weights(self.model, temporary)
        os.replace(temporary, weights)
        metadata = {
            "epoch": self._current_epoch,
            "batches_done": self._batches_done,
            "step": _optimizer_step(self.model),
        }
        Path(metadata_path + ".tmp").write_text(json.dumps(metadata))
        os.replace(metadata_path + ".tmp", metadata_path)
        self.saved_step = metadata["step"]
        if directory != self.backup_dir:  # a worker's copy: written like the chief's, then removed
            shutil.rmtree(directory, ignore_errors=True)

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
            self.saved_step = metadata["step"]
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
