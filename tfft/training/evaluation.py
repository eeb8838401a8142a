"""`DevEvaluator`: dev-set metrics from `tfft.metrics` at every epoch end, inside `fit`."""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfft.metrics import (
    classification_metrics,
    format_report,
    multilabel_metrics,
    regression_metrics,
    save_metrics,
    scalar_metrics,
)

TASKS = ("classification", "multilabel", "regression")


def _split_dataset(dataset):
    """(inputs dataset, labels array) from a dataset of (x, y) or (x, y, sample_weight) batches."""
    labels = [np.asarray(element[1]) for element in dataset.as_numpy_iterator()]
    return dataset.map(lambda *element: element[0]), np.concatenate(labels) if labels else np.zeros((0,))


class DevEvaluator(keras.callbacks.Callback):
    """Evaluates the model on dev data after every epoch and adds the numbers to the epoch logs.

    The scalar metrics go into the logs as `val_<name>` (`val_accuracy`, `val_macro_f1`,
    `val_micro_f1`, `val_mse`, `val_pearson`, ...), so callbacks after it in the list
    (`BestCheckpoint`, `TensorBoard`, the progress bar, `History`) see them. Put it before them.
    The full dict (per class, confusion matrix) is `evaluator.latest`, written to
    `output_dir/metrics.json` and, with `verbose`, printed as a report.

    Example:
        >>> dev = DevEvaluator((dev_x, dev_y), "classification", label_names=["neg", "pos"], output_dir=run_dir)
        >>> model.fit(train, callbacks=[dev, BestCheckpoint(run_dir / "best", monitor="val_macro_f1")])

    Any task's metrics (entity F1 for NER, exact match for QA) come in through `metrics_fn`:

        >>> dev = DevEvaluator(metrics_fn=lambda model: task.evaluate(model, dev_examples),
        ...                    scalars_fn=task.scalar_metrics)

    Args:
        data: `(x, y)` arrays, or a `tf.data.Dataset` of `(x, y)` batches (read once for labels).
        task: "classification" (y: class indices), "multilabel" (y: 0/1 matrix) or "regression".
        label_names: names of the classes or labels, in index order.
        threshold: multi-label decision threshold on probabilities.
        from_logits: the model outputs logits (a sigmoid is applied for multi-label).
        output: key of the model's output dict to score, when it returns a dict.
        output_dir: where to write metrics.json (None: not written).
        batch_size: prediction batch size for array data.
        verbose: print the report after each evaluation; "auto"/1 also shows a progress bar.
        metrics_fn: instead of `data` and `task`: a function of the model returning a metrics dict.
        scalars_fn: the dict's headline numbers for the logs (default `tfft.metrics.scalar_metrics`).
        report_fn: formats the dict for `verbose` (default `tfft.metrics.format_report`).
    """

    def __init__(
        self,
        data=None,
        task="classification",
        label_names=None,
        threshold=0.5,
        from_logits=True,
        output=None,
        output_dir=None,
        batch_size=32,
        verbose=0,
        metrics_fn=None,
        scalars_fn=scalar_metrics,
        report_fn=format_report,
    ):
        super().__init__()
        self.metrics_fn, self.scalars_fn, self.report_fn = metrics_fn, scalars_fn, report_fn
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.verbose = verbose
        self.latest = None
        if metrics_fn is not None:
            if data is not None:
                raise ValueError("give DevEvaluator either data (with task) or metrics_fn, not both")
            return
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if isinstance(data, tf.data.Dataset):
            self._inputs, self._labels = _split_dataset(data)
        else:
            if not (isinstance(data, (tuple, list)) and len(data) >= 2):
                raise ValueError("data must be (x, y) or a tf.data.Dataset of (x, y) batches")
            self._inputs, self._labels = data[0], np.asarray(data[1])
        self.task = task
        self.label_names = list(label_names) if label_names is not None else None
        self.threshold = threshold
        self.from_logits = from_logits
        self.output = output
        self.batch_size = batch_size

    def predict(self):
        is_dataset = isinstance(self._inputs, tf.data.Dataset)
        scores = self.model.predict(
            self._inputs, batch_size=None if is_dataset else self.batch_size, verbose=1 if self.verbose else 0
        )
        if isinstance(scores, dict):
            if self.output not in scores:
                raise ValueError(
                    f"the model returns outputs {sorted(scores)}; pass output= one of them to DevEvaluator"
                )
            scores = scores[self.output]
        return np.asarray(scores, np.float64)

    def evaluate(self):
        """Runs the model on the dev data; returns the metrics dict."""
        if self.metrics_fn is not None:
            return self.metrics_fn(self.model)
        scores = self.predict()
        if self.task == "classification":
            return classification_metrics(self._labels, scores, self.label_names)
        if self.task == "multilabel":
            probs = 1.0 / (1.0 + np.exp(-scores)) if self.from_logits else scores
            return multilabel_metrics(self._labels, probs, self.label_names, self.threshold)
        return regression_metrics(self._labels, scores)

    def on_epoch_end(self, epoch, logs=None):
        metrics = self.evaluate()
        metrics["epoch"] = epoch + 1
        metrics["step"] = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.latest = metrics
        if logs is not None:
            logs.update({f"val_{name}": value for name, value in self.scalars_fn(metrics).items()})
        if self.output_dir is not None:
            save_metrics(metrics, self.output_dir / "metrics.json")
        if self.verbose:
            print(f"\nDev metrics after epoch {epoch + 1}:\n{self.report_fn(metrics)}\n")
