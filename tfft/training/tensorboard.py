"""`TensorBoard`: the scalars, hyperparameters and confusion matrix of a fine-tuning run.

Layout (what TensorBoard's UI pairs up): `log_dir/train` and `log_dir/validation` hold
`epoch_<metric>` scalars per epoch (x = epoch, as Keras's callback), `log_dir/train` also holds
`batch_<metric>`, `learning_rate` and `gradient_norm` every `update_freq` optimizer steps
(x = `optimizer.iterations`, so a resumed run continues the same curve), `log_dir` holds the
hyperparameters (hparams plugin) and `log_dir/validation` the confusion matrix image per epoch.
"""

import numbers

import keras
import numpy as np
import tensorflow as tf
from keras import ops


def _float(value):
    return float(ops.convert_to_numpy(value))


def _to_hparam(value):
    if isinstance(value, (bool, str, numbers.Real)):
        return value
    return str(value)


def confusion_matrix_image(confusion, label_names, cell=36):
    """Renders a confusion matrix (rows true, columns predicted) as a uint8 RGB array `[H, W, 3]`.

    Cells are shaded by the row-normalized rate (white 0 to blue 1) and show the count; label
    names label the axes. Uses Pillow (installed with tensorboard); without it, the shaded
    cells only.
    """
    confusion = np.asarray(confusion, np.int64)
    totals = confusion.sum(axis=1, keepdims=True)
    rates = np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)
    white, blue = np.array([255.0, 255.0, 255.0]), np.array([31.0, 81.0, 163.0])
    colors = (white + (blue - white) * rates[..., None]).astype(np.uint8)  # [n, n, 3]
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return np.kron(colors, np.ones((cell, cell, 1), np.uint8))
    names = [str(name)[:14] for name in label_names]
    font = ImageFont.load_default()
    text_width = max([int(font.getlength(name)) for name in names] + [int(font.getlength("true \\ pred"))]) + 8
    n = len(names)
    width, height = text_width + n * cell + 4, text_width + n * cell + 4
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((4, 4), "true \\ pred", fill="black", font=font)
    for i, name in enumerate(names):
        draw.text((4, text_width + i * cell + cell // 3), name, fill="black", font=font)  # Row labels.
        column = Image.new("RGB", (text_width, cell), "white")  # Column labels, rotated.
        ImageDraw.Draw(column).text((4, cell // 3), name, fill="black", font=font)
        image.paste(column.rotate(90, expand=True), (text_width + i * cell, 0))
    for i in range(n):
        for j in range(n):
            x, y = text_width + j * cell, text_width + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=tuple(int(c) for c in colors[i, j]), outline="gray")
            text = str(confusion[i, j])
            ink = "white" if rates[i, j] > 0.5 else "black"
            draw.text((x + (cell - font.getlength(text)) / 2, y + cell // 3), text, fill=ink, font=font)
    return np.asarray(image, np.uint8)


class TensorBoard(keras.callbacks.Callback):
    """Writes a fine-tuning run's TensorBoard logs (see the module doc for the layout).

    `gradient_norm` is the global norm of the last update's gradient before clipping, kept by
    tfft's optimizer (`tfft.training.create_optimizer`); with another optimizer it is not
    written. Put this callback after `DevEvaluator` so the epoch logs include its metrics.

    Example:
        >>> TensorBoard(run_dir / "tensorboard", update_freq=50, hparams={"learning_rate": 2e-5},
        ...             evaluator=dev_evaluator)

    Args:
        log_dir: the run's TensorBoard directory.
        update_freq: write step scalars every this many optimizer steps.
        hparams: hyperparameters to show in the HPARAMS tab (values: bool, number or str;
            anything else is written as its str). Needs the `tensorboard` package.
        evaluator: a `DevEvaluator` whose classification confusion matrix is drawn per epoch.
    """

    def __init__(self, log_dir, update_freq=100, hparams=None, evaluator=None):
        super().__init__()
        self.log_dir = str(log_dir)
        self.update_freq = int(update_freq)
        self.hparams = dict(hparams or {})
        self.evaluator = evaluator
        self._writers = {}
        self._last_step = None

    def _writer(self, name):
        if name not in self._writers:
            path = self.log_dir if name == "root" else f"{self.log_dir}/{name}"
            self._writers[name] = tf.summary.create_file_writer(path)
        return self._writers[name]

    def _optimizer_scalars(self):
        optimizer = self.model.optimizer
        scalars = {"learning_rate": _float(optimizer.learning_rate)}
        norm = getattr(optimizer, "gradient_norm", None)
        if norm is not None:
            scalars["gradient_norm"] = _float(norm)
        return scalars

    def on_train_begin(self, logs=None):
        self._last_step = None
        if self.hparams:
            try:
                from tensorboard.plugins.hparams import api as hp
            except ImportError as error:
                raise ImportError(
                    "TensorBoard(hparams=...) needs the tensorboard package: pip install tensorboard"
                ) from error
            with self._writer("root").as_default():
                hp.hparams({name: _to_hparam(value) for name, value in self.hparams.items()})
            self._writer("root").flush()

    def on_train_batch_end(self, batch, logs=None):
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        if step == self._last_step or step % self.update_freq:
            return  # No update this batch (accumulation, resumed skip), or not a logging step.
        self._last_step = step
        scalars = {f"batch_{name}": value for name, value in (logs or {}).items() if np.ndim(value) == 0}
        scalars.update(self._optimizer_scalars())
        writer = self._writer("train")
        with writer.as_default(step=step):
            for name, value in scalars.items():
                tf.summary.scalar(name, _float(value))
        writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {name: value for name, value in logs.items() if not name.startswith("val_") and np.ndim(value) == 0}
        train.update(self._optimizer_scalars())
        validation = {
            name[4:]: value for name, value in logs.items() if name.startswith("val_") and np.ndim(value) == 0
        }
        for writer_name, scalars in (("train", train), ("validation", validation)):
            if not scalars:
                continue
            writer = self._writer(writer_name)
            with writer.as_default(step=epoch):
                for name, value in scalars.items():
                    tf.summary.scalar(f"epoch_{name}", _float(value))
            writer.flush()
        latest = getattr(self.evaluator, "latest", None)
        if latest and "confusion_matrix" in latest and latest.get("epoch") == epoch + 1:
            image = confusion_matrix_image(latest["confusion_matrix"], latest["label_names"])
            writer = self._writer("validation")
            with writer.as_default(step=epoch):
                tf.summary.image("confusion_matrix", image[None], max_outputs=1)
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
