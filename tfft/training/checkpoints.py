"""`BestCheckpoint`: keep the weights of the best epoch by a dev metric, stop when it stalls."""

import json
import os
from pathlib import Path

import keras
from keras import ops

from tfft.training.weights import load_weights, save_weights

_LOWER_IS_BETTER = ("loss", "mse", "rmse", "mae", "error")


def _mode_for(monitor):
    name = monitor.removeprefix("val_")
    return "min" if any(name == key or name.endswith("_" + key) for key in _LOWER_IS_BETTER) else "max"


class BestCheckpoint(keras.callbacks.EarlyStopping):
    """Saves `best.weights.h5` whenever the monitored dev metric improves; optional early stopping.

    With PEFT adapters the file holds only the adapters' part (`tfft.training.weights`).

    Keras's `EarlyStopping` decides improvement and patience; this adds the checkpoint on disk
    and keeps its state in `best.json` (metric, best value and epoch, step, patience count),
    so a run resumed by `BackupAndResume` keeps comparing against the real best and counting
    patience where it stopped (Keras's `ModelCheckpoint`/`EarlyStopping` start over).

    Example:
        >>> BestCheckpoint(run_dir / "best", monitor="val_macro_f1", patience=3)

    Args:
        directory: where `best.weights.h5` and `best.json` go.
        monitor: a key of the epoch logs, e.g. "val_loss", "val_macro_f1" (from `DevEvaluator`).
        mode: "max", "min", or None to choose from the name (min for loss/mse/mae/error).
        patience: epochs without improvement before stopping; None never stops.
        min_delta: smallest change that counts as an improvement.
        restore_best_weights: load the best weights into the model when `fit` ends (the
            optimizer state is left as trained).
        write: False on the workers of a multi-worker run other than the chief: they keep the
            best value and patience (so every worker stops at the same epoch) but write nothing.
    """

    def __init__(
        self,
        directory,
        monitor="val_loss",
        mode=None,
        patience=None,
        min_delta=0.0,
        restore_best_weights=True,
        verbose=0,
        write=True,
    ):
        mode = mode or _mode_for(monitor)
        super().__init__(
            monitor=monitor,
            mode=mode,
            patience=patience if patience is not None else 2**31,
            min_delta=min_delta,
            restore_best_weights=False,
            verbose=verbose,
        )
        self.directory = Path(directory)
        self.weights_path = self.directory / "best.weights.h5"
        self.state_path = self.directory / "best.json"
        self.restore_best = restore_best_weights and write
        self.write = write
        self._state_checked = False

    def _step(self):
        return int(ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._state_checked = False

    def on_epoch_begin(self, epoch, logs=None):
        # After every callback's on_train_begin, so after BackupAndResume has restored the step.
        if self._state_checked:
            return
        self._state_checked = True
        step = self._step()
        if step == 0 or not self.state_path.is_file():
            return  # A fresh run: any best.json here is from an earlier run and gets replaced.
        state = json.loads(self.state_path.read_text())
        if state.get("monitor") == self.monitor and state.get("step", step + 1) <= step:
            self.best = state["best"]
            self.best_epoch = state["best_epoch"]
            self.wait = state["wait"]

    def on_epoch_end(self, epoch, logs=None):
        previous_best = self.best
        super().on_epoch_end(epoch, logs)
        if self.best is None:
            return  # The metric is missing from the logs; Keras warned.
        improved = previous_best is None or self.best != previous_best
        if not self.write:
            return
        if improved:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / "best.tmp.weights.h5"
            save_weights(self.model, temporary, optimizer=False)  # resuming uses backup/, not best/
            os.replace(temporary, self.weights_path)
        state = {
            "monitor": self.monitor,
            "best": float(self.best),
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "step": self._step(),
        }
        if improved:
            state["logs"] = {
                key: float(value) for key, value in (logs or {}).items() if isinstance(value, (int, float))
            }
        elif self.state_path.is_file():
            state["logs"] = json.loads(self.state_path.read_text()).get("logs", {})
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "best.json.tmp").write_text(json.dumps(state, indent=2))
        os.replace(self.directory / "best.json.tmp", self.state_path)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self.restore_best and self.weights_path.is_file():
            load_weights(self.model, self.weights_path, optimizer=False)  # the optimizer stays as trained
