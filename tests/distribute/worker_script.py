"""One worker of a test's multi-worker run: `tfft.run.train` with a callback that records it.

    python worker_script.py CONFIG RECORD_DIR [--pause SECONDS] [--late SECONDS] [KEY=VALUE ...]

Run by test_multi_worker.py, once alone or as every worker under `launch_local_workers` (which
sets TF_CONFIG). Writes RECORD_DIR/worker-<i>.json (the loss after every step, the final step)
and worker-<i>.npz (the weights `fit` ended with, before the best epoch is restored). `--pause`
sleeps after every batch and writes the step reached to RECORD_DIR/progress-<i>, so a test can
kill or stop a worker mid-epoch. `--late` makes every worker but the chief write its last backup
that many seconds late, after the chief's.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfft.config import load_config  # noqa: E402
from tfft.distribute import read_cluster  # noqa: E402
from tfft.run import train  # noqa: E402


class Record(keras.callbacks.Callback):
    def __init__(self, directory, worker, pause):
        super().__init__()
        self.directory, self.worker, self.pause = Path(directory), worker, pause
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        if logs and "loss" in logs:  # a resumed run's skipped batches have no logs
            self.losses.append(float(logs["loss"]))
        if self.pause:  # a test watching this worker's progress kills or stops it mid-epoch
            self.directory.mkdir(parents=True, exist_ok=True)
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            (self.directory / f"progress-{self.worker}").write_text(str(step))
            time.sleep(self.pause)

    def on_train_end(self, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        weights = {v.path.replace("/", "|"): keras.ops.convert_to_numpy(v) for v in self.model.weights}
        np.savez(self.directory / f"worker-{self.worker}.npz", **weights)
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        (self.directory / f"worker-{self.worker}.json").write_text(json.dumps({"losses": self.losses, "step": step}))


def write_last_backup_late(seconds, epochs):
    """This worker writes its backup at the end of the last epoch `seconds` late: after the
    chief's, when the chief may already be removing the backup directory."""
    from tfft.training.resume import BackupAndResume

    save = BackupAndResume._save_model

    def late_save(self):
        if self._current_epoch == epochs:
            time.sleep(seconds)
        save(self)

    BackupAndResume._save_model = late_save


def main(argv):
    config_path, record_dir, *rest = argv
    options = {"--pause": 0.0, "--late": 0.0}
    while rest[:1] and rest[0] in options:
        options[rest[0]], rest = float(rest[1]), rest[2:]
    cluster = read_cluster()
    worker = cluster.index if cluster else 0
    config = load_config(config_path, rest)
    if options["--late"] and worker != 0:
        write_last_backup_late(options["--late"], config.training.epochs)
    train(config, verbose=2 if worker == 0 else 0, callbacks=[Record(record_dir, worker, options["--pause"])])


if __name__ == "__main__":
    from tfft.cli import _log_to_stderr
    from tfft.errors import TfftError

    try:
        with _log_to_stderr():
            main(sys.argv[1:])
    except TfftError as e:
        print(f"tfft: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
