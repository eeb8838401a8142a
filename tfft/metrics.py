"""Evaluation metrics for classification, multi-label classification and regression.

Plain numpy, returning JSON-ready dicts (floats, ints, lists; an undefined correlation is None).
`format_report` prints one as a table, as sklearn's `classification_report` plus the confusion
matrix; `save_metrics` writes it to `metrics.json`.

    >>> m = classification_metrics([0, 1, 1], [0, 1, 0], label_names=["neg", "pos"])
    >>> m["accuracy"], m["macro_f1"], m["confusion_matrix"]
    (0.6666666666666666, 0.6666666666666666, [[1, 0], [1, 1]])
    >>> print(format_report(m))
"""

import numpy as np

from tfft.weights import write_json_atomic


def _ratio(numerator, denominator):
    """Elementwise numerator / denominator, 0 where the denominator is 0 (sklearn's zero_division=0)."""
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def _f1(precision, recall):
    return _ratio(2 * precision * recall, precision + recall)


def _per_class(tp, fp, fn, label_names):
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _f1(precision, recall)
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(label_names, precision, recall, f1, tp + fn)
    }
    return per_class, precision, recall, f1


def _class_indices(values, name, num_classes):
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] > 1:  # Scores or one-hot rows.
        values = values.argmax(axis=-1)
    values = values.reshape(-1)
    if values.size and not np.all(np.equal(np.mod(values, 1), 0)):
        raise ValueError(f"{name} must be class indices (or score rows), got non-integer values")
    values = values.astype(np.int64)
    if num_classes is not None and values.size and (values.min() < 0 or values.max() >= num_classes):
        bad = values[(values < 0) | (values >= num_classes)][0]
        raise ValueError(f"{name} has class index {bad}, outside 0..{num_classes - 1} ({num_classes} label names)")
    return values


def classification_metrics(y_true, y_pred, label_names=None):
    """Single-label classification metrics.

    Args:
        y_true: class indices `[n]`.
        y_pred: predicted class indices `[n]`, or scores/logits `[n, classes]` (argmax is taken).
        label_names: one name per class; default "0", "1", ... up to the largest index seen.
    Returns:
        `accuracy`, `macro_precision`, `macro_recall`, `macro_f1`, `micro_f1` (equal to accuracy
        for single-label data), `weighted_f1`, `per_class` {name: precision, recall, f1,
        support}, `confusion_matrix` (rows true, columns predicted), `label_names`,
        `num_examples`, `task`.
    """
    num_classes = len(label_names) if label_names is not None else None
    y_true = _class_indices(y_true, "y_true", num_classes)
    y_pred = _class_indices(y_pred, "y_pred", num_classes)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} examples but y_pred has {y_pred.size}")
    if label_names is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
        label_names = [str(i) for i in range(num_classes)]
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    tp = np.diag(confusion)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    per_class, precision, recall, f1 = _per_class(tp, fp, fn, label_names)
    support = tp + fn
    n = int(y_true.size)
    micro_precision, micro_recall = _ratio(tp.sum(), tp.sum() + fp.sum()), _ratio(tp.sum(), tp.sum() + fn.sum())
    return {
        "task": "classification",
        "num_examples": n,
        "accuracy": float(_ratio(tp.sum(), n)),
        "macro_precision": float(precision.mean()) if num_classes else 0.0,
        "macro_recall": float(recall.mean()) if num_classes else 0.0,
        "macro_f1": float(f1.mean()) if num_classes else 0.0,
        "micro_f1": float(_f1(micro_precision, micro_recall)),
        "weighted_f1": float(_ratio((f1 * support).sum(), support.sum())),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "label_names": list(label_names),
    }


def multilabel_metrics(y_true, probs, label_names=None, threshold=0.5):
    """Multi-label metrics at a decision threshold.

    Args:
        y_true: 0/1 matrix `[n, labels]`.
        probs: probabilities `[n, labels]`; a label is predicted when `probs >= threshold`.
        label_names: one name per column.
    Returns:
        `micro_precision`, `micro_recall`, `micro_f1`, `macro_precision`, `macro_recall`,
        `macro_f1`, `subset_accuracy` (every label right), `per_label`, `threshold`,
        `label_names`, `num_examples`, `task`.
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, np.float64)
    if y_true.ndim != 2 or probs.shape != y_true.shape:
        raise ValueError(f"y_true and probs must both be [examples, labels], got {y_true.shape} and {probs.shape}")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("y_true must hold only 0 and 1 for multi-label metrics")
    if label_names is None:
        label_names = [str(i) for i in range(y_true.shape[1])]
    if len(label_names) != y_true.shape[1]:
        raise ValueError(f"{len(label_names)} label names for {y_true.shape[1]} label columns")
    truth = y_true.astype(bool)
    predicted = probs >= threshold
    tp = (truth & predicted).sum(axis=0)
    fp = (~truth & predicted).sum(axis=0)
    fn = (truth & ~predicted).sum(axis=0)
    per_label, precision, recall, f1 = _per_class(tp, fp, fn, label_names)
    micro_precision, micro_recall = _ratio(tp.sum(), tp.sum() + fp.sum()), _ratio(tp.sum(), tp.sum() + fn.sum())
    return {
        "task": "multilabel",
        "num_examples": int(y_true.shape[0]),
        "threshold": float(threshold),
        "micro_precision": float(micro_precision),
        "micro_recall": float(micro_recall),
        "micro_f1": float(_f1(micro_precision, micro_recall)),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "subset_accuracy": float((truth == predicted).all(axis=1).mean()) if len(truth) else 0.0,
        "per_label": per_label,
        "label_names": list(label_names),
    }


def _ranks(values):
    """Ranks from 1, ties sharing their average rank (as scipy.stats.rankdata)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.diff(np.r_[first, len(values)])
    ranks = np.empty(len(values), np.float64)
    ranks[order] = first[group] + (counts[group] + 1) / 2.0
    return ranks


def _pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return None if denominator == 0 else float(np.clip((a * b).sum() / denominator, -1.0, 1.0))


def regression_metrics(y_true, y_pred):
    """Regression metrics: `mse`, `rmse`, `mae`, `pearson`, `spearman` (None when undefined,
    e.g. constant predictions), `num_examples`, `task`. Inputs are `[n]` or `[n, 1]`."""
    arrays = []
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        values = np.asarray(values, np.float64)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise ValueError(f"{name} must be [examples] or [examples, 1] for regression, got shape {values.shape}")
        arrays.append(values)
    y_true, y_pred = arrays
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} examples but y_pred has {y_pred.size}")
    error = y_pred - y_true
    mse = float((error**2).mean()) if error.size else 0.0
    return {
        "task": "regression",
        "num_examples": int(y_true.size),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.abs(error).mean()) if error.size else 0.0,
        "pearson": _pearson(y_true, y_pred) if y_true.size > 1 else None,
        "spearman": _pearson(_ranks(y_true), _ranks(y_pred)) if y_true.size > 1 else None,
    }


_NOT_SCALAR_METRICS = ("num_examples", "threshold", "epoch", "step")


def scalar_metrics(metrics):
    """The top-level numbers of a metrics dict (what is logged and monitored), e.g. `macro_f1`."""
    return {
        key: value
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in _NOT_SCALAR_METRICS
    }


def save_metrics(metrics, path):
    """Writes a metrics dict as indented JSON (atomically), e.g. to `run_dir/metrics.json`."""
    write_json_atomic(metrics, path)


def _format_number(value, width=10):
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.4f}"


def _table(rows, label_names, totals):
    width = max([12] + [len(str(name)) for name in label_names])
    lines = [f"{'':>{width}} {'precision':>10} {'recall':>10} {'f1-score':>10} {'support':>10}", ""]
    for name in label_names:
        row = rows[name]
        lines.append(
            f"{name:>{width}} {_format_number(row['precision'])} {_format_number(row['recall'])} "
            f"{_format_number(row['f1'])} {row['support']:>10d}"
        )
    lines.append("")
    for name, precision, recall, f1, support in totals:
        lines.append(
            f"{name:>{width}} {_format_number(precision) if precision is not None else ' ' * 10} "
            f"{_format_number(recall) if recall is not None else ' ' * 10} {_format_number(f1)} {support:>10d}"
        )
    return lines


def _confusion_lines(confusion, label_names):
    names = [str(name) for name in label_names]
    width = max([6] + [len(name) for name in names])
    cell = max([8] + [len(name) for name in names] + [len(str(v)) for row in confusion for v in row])
    lines = ["Confusion matrix (rows: true label, columns: predicted)"]
    lines.append(f"{'':>{width}} " + " ".join(f"{name:>{cell}}" for name in names))
    for name, row in zip(names, confusion):
        lines.append(f"{name:>{width}} " + " ".join(f"{value:>{cell}d}" for value in row))
    return lines


def format_report(metrics):
    """A readable text report of a dict from one of the metric functions."""
    task = metrics.get("task")
    n = metrics.get("num_examples", 0)
    if task == "classification":
        support = [metrics["per_class"][name]["support"] for name in metrics["label_names"]]
        weights = np.asarray(support, np.float64)
        weighted = [
            float(
                _ratio(
                    (np.asarray([metrics["per_class"][k][key] for k in metrics["label_names"]]) * weights).sum(),
                    weights.sum(),
                )
            )
            for key in ("precision", "recall")
        ]
        lines = _table(
            metrics["per_class"],
            metrics["label_names"],
            [
                ("accuracy", None, None, metrics["accuracy"], n),
                ("macro avg", metrics["macro_precision"], metrics["macro_recall"], metrics["macro_f1"], n),
                ("weighted avg", weighted[0], weighted[1], metrics["weighted_f1"], n),
            ],
        )
        return "\n".join(lines + [""] + _confusion_lines(metrics["confusion_matrix"], metrics["label_names"]))
    if task == "multilabel":
        support = sum(row["support"] for row in metrics["per_label"].values())
        lines = _table(
            metrics["per_label"],
            metrics["label_names"],
            [
                ("micro avg", metrics["micro_precision"], metrics["micro_recall"], metrics["micro_f1"], support),
                ("macro avg", metrics["macro_precision"], metrics["macro_recall"], metrics["macro_f1"], support),
            ],
        )
        lines += [
            "",
            f"subset accuracy {metrics['subset_accuracy']:.4f} over {n} examples at threshold {metrics['threshold']:g}",
        ]
        return "\n".join(lines)
    if task == "regression":
        lines = [f"{'':>10} {'value':>10}", ""]
        for key in ("mse", "rmse", "mae", "pearson", "spearman"):
            lines.append(f"{key:>10} {_format_number(metrics[key])}")
        lines += ["", f"{n} examples"]
        return "\n".join(lines)
    raise ValueError(f"not a tfft metrics dict (task {task!r}); make it with tfft.metrics")
