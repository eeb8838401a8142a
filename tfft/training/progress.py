"""`ProgressLogger`: a plain progress line every N steps, for logs and pipes.

Keras's live progress bar redraws one line; written to a file it becomes thousands of lines, and
its per-epoch mode says nothing during a long epoch. This callback prints a line every
`every_n_steps` optimizer steps and one at each epoch end, flushed at once:

    step 50/801 (epoch 1/3) · loss 0.6124 · 63.2 examples/s · elapsed 25s · ETA 6m22s
    epoch 1/3 done at step 267 · loss 0.4410 · val_accuracy 0.8545 · val_macro_f1 0.8540 · 2m14s
"""

import sys
import time

import keras
import numpy as np
from keras import ops


def format_duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _scalars(logs):
    return {name: float(value) for name, value in (logs or {}).items() if np.ndim(value) == 0}


class ProgressLogger(keras.callbacks.Callback):
    """Prints step, loss, throughput and ETA every `every_n_steps` optimizer steps, and the
    epoch's logs (dev metrics included, when `DevEvaluator` comes before it) at each epoch end.

    Args:
        every_n_steps: steps between lines.
        total_steps: optimizer steps of the whole run (for the ETA; None: no ETA).
        batch_size: examples per batch (for examples/s).
        epochs: for the "epoch i/n" part.
        stream: where to print (default sys.stdout, looked up at each line).
    """

    def __init__(self, every_n_steps=50, total_steps=None, batch_size=None, epochs=None, stream=None):
        super().__init__()
        self.every_n_steps = max(1, int(every_n_steps))
        self.total_steps = total_steps
        self.batch_size = batch_size
        self.epochs = epochs
        self.stream = stream
        self._epoch = 0

    def _print(self, line):
        stream = self.stream or sys.stdout
        print(line, file=stream, flush=True)

    def _step(self):
        return int(ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_begin(self, logs=None):
        self._start_time = time.monotonic()
        self._start_step = None  # set at the first batch: a resumed run starts past 0
        self._batches = 0
        self._last_step = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_time = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        self._batches += 1
        if self._start_step is None:
            self._start_step = step - 1
        if step % self.every_n_steps or step == self._last_step:  # accumulation: a step spans batches
            return
        self._last_step = step
        elapsed = max(time.monotonic() - self._start_time, 1e-9)
        parts = [f"step {step}" + (f"/{self.total_steps}" if self.total_steps else "")
                 + (f" (epoch {self._epoch + 1}/{self.epochs})" if self.epochs else "")]
        loss = _scalars(logs).get("loss")
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        if self.batch_size:
            parts.append(f"{self._batches * self.batch_size / elapsed:.1f} examples/s")
        parts.append(f"elapsed {format_duration(elapsed)}")
        if self.total_steps and step < self.total_steps:
            per_step = elapsed / max(1, step - self._start_step)
            parts.append(f"ETA {format_duration(per_step * (self.total_steps - step))}")
        self._print(" · ".join(parts))

    def on_epoch_end(self, epoch, logs=None):
        scalars = _scalars(logs)
        parts = [f"epoch {epoch + 1}" + (f"/{self.epochs}" if self.epochs else "") + f" done at step {self._step()}"]
        parts += [f"{name} {value:.4f}" for name, value in scalars.items()]
        parts.append(format_duration(time.monotonic() - self._epoch_time))
        self._print(" · ".join(parts))
