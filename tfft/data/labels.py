"""`LabelVocab`: the label set of a classification or regression task, and label encoding to arrays."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence

import numpy as np

from tfft.data.examples import Examples
from tfft.errors import DataError

PROBLEM_TYPES = ("single_label", "multi_label", "regression")
_NAMES_SHOWN = 20


def _show(names) -> str:
    shown = ", ".join(map(repr, names[:_NAMES_SHOWN]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > _NAMES_SHOWN else "")


def _locate(labels):
    """(raw label values, where(i) -> "file, line 7, column 'label'") for Examples or a plain sequence."""
    if isinstance(labels, Examples):
        if labels.labels is None:
            raise DataError(f"{labels.source}: no labels were read (label_column=None)")
        column = f", column {labels.label_column!r}" if labels.label_column else ""
        return labels.labels, lambda i: labels.where(i) + column
    return list(labels), lambda i: f"labels[{i}]"


def _check_class(value, where: str):
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{where}: label {value!r} is a {type(value).__name__}; class labels are strings "
                        "or ints (problem_type='regression' takes numbers)")
    if isinstance(value, str) and not value.strip():
        raise DataError(f"{where}: label is empty")
    return value


def _row_classes(value, problem_type: str, separator: str, where: str) -> list:
    """The classes one row's label names, checked: one for single_label, any number for multi_label."""
    if problem_type == "single_label":
        if isinstance(value, (list, tuple)):
            raise DataError(f"{where}: label {value!r} is a list; use problem_type='multi_label' "
                            "for rows with several labels")
        return [_check_class(value, where)]
    if isinstance(value, str):
        value = value.split(separator) if value.strip() else []
    elif not isinstance(value, (list, tuple)):
        value = [value]
    return [_check_class(v.strip() if isinstance(v, str) else v, where) for v in value]


@dataclasses.dataclass(frozen=True)
class LabelVocab:
    """The labels of a task and how they become training targets.

    - "single_label": one class per row, `names` are the classes (strings or ints); encodes to
      int32 class ids `[n]`.
    - "multi_label": any number of classes per row (a list, or a string joined by `separator`
      as in a CSV cell; "" is no class); encodes to float32 multi-hot `[n, len(names)]`.
    - "regression": one number per row, no names; encodes to float32 `[n]`.

    Build it from the training data (`from_examples`: classes sorted, so the same data always
    gives the same ids) or give the names from the config. Encoding a label the vocabulary does
    not know raises a `DataError` naming the file, line, column and label.

    Example:
        vocab = LabelVocab.from_examples(train)                       # names ('negative', 'positive')
        vocab = LabelVocab("single_label", ["negative", "positive"])  # from a config
        y_dev = vocab.encode(dev)                                     # int32 [len(dev)]
    """

    problem_type: str = "single_label"
    names: tuple = ()
    separator: str = "|"

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        if self.problem_type not in PROBLEM_TYPES:
            raise DataError(f"problem_type must be one of {PROBLEM_TYPES}, got {self.problem_type!r}")
        if self.problem_type == "regression":
            if self.names:
                raise DataError(f"a regression LabelVocab has no label names, got {_show(self.names)}")
            return
        if not self.names:
            raise DataError(f"a {self.problem_type} LabelVocab needs at least one label name")
        for name in self.names:
            _check_class(name, "label names")
        if len({type(n) for n in self.names}) > 1:
            raise DataError(f"label names mix strings and ints: {_show(self.names)}")
        if len(set(self.names)) != len(self.names):
            repeated = sorted({n for n in self.names if self.names.count(n) > 1})
            raise DataError(f"label names repeat {_show(repeated)}")
        if self.problem_type == "multi_label" and not self.separator:
            raise DataError("a multi_label LabelVocab needs a non-empty separator")

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def from_examples(cls, examples: Examples | Sequence, problem_type: str = "single_label",
                      separator: str = "|") -> LabelVocab:
        """The labels of `examples` (usually the training split): the source's own class order
        when it declares one (TFDS ClassLabel), otherwise every label seen, sorted."""
        if problem_type not in PROBLEM_TYPES:
            raise DataError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")
        values, where = _locate(examples)
        if problem_type == "regression":
            vocab = cls("regression")
            vocab.encode(examples)  # checks every value is a number, naming the first that is not
            return vocab
        if getattr(examples, "label_names", None):
            return cls(problem_type, examples.label_names, separator)
        seen, first = set(), {}  # first: row where each label type (str, int) first appears
        for i, value in enumerate(values):
            for name in _row_classes(value, problem_type, separator, where(i)):
                if name not in seen:
                    seen.add(name)
                    first.setdefault(type(name), i)
        if not seen:
            raise DataError(f"{getattr(examples, 'source', 'labels')}: no labels to build a label vocabulary from")
        if len(first) > 1:
            (earlier, i), (later, j) = sorted(first.items(), key=lambda item: item[1])
            raise DataError(f"{where(j)}: label {values[j]!r} is {later.__name__} but earlier labels are "
                            f"{earlier.__name__} (first at {where(i)}); labels must be all strings or all ints")
        return cls(problem_type, sorted(seen), separator)

    # -- encoding -----------------------------------------------------------------------------
    @property
    def num_labels(self) -> int:
        """Width of the model's output: the number of classes, or 1 for regression."""
        return 1 if self.problem_type == "regression" else len(self.names)

    def encode(self, labels: Examples | Sequence) -> np.ndarray:
        """Targets for `labels` (an `Examples` or a sequence of raw labels): int32 ids `[n]`,
        float32 multi-hot `[n, num_labels]` or float32 values `[n]`."""
        values, where = _locate(labels)
        if self.problem_type == "regression":
            return np.asarray([self._number(v, where, i) for i, v in enumerate(values)], np.float32)
        index = {name: i for i, name in enumerate(self.names)}
        if self.problem_type == "single_label":
            return np.asarray([self._id(index, v, where, i) for i, v in enumerate(values)], np.int32)
        hot = np.zeros((len(values), len(self.names)), np.float32)
        for i, value in enumerate(values):
            for name in _row_classes(value, self.problem_type, self.separator, where(i)):
                hot[i, self._id(index, name, where, i)] = 1.0
        return hot

    def _id(self, index, value, where, i) -> int:
        if self.problem_type == "single_label":
            _row_classes(value, self.problem_type, self.separator, where(i))
        try:
            return index[value]
        except (KeyError, TypeError):
            pass
        hint = ""
        if any(str(n) == str(value) for n in self.names):
            hint = f" (the {type(value).__name__} {value!r} is not the {type(self.names[0]).__name__} name)"
        raise DataError(f"{where(i)}: label {value!r} is not one of the {len(self.names)} known labels "
                        f"[{_show(self.names)}]{hint}")

    @staticmethod
    def _number(value, where, i) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"{where(i)}: regression label {value!r} is not a number")
        if not math.isfinite(value):
            raise DataError(f"{where(i)}: regression label {value!r} is not finite")
        return float(value)

    # -- saving -------------------------------------------------------------------------------
    def to_json(self) -> str:
        """JSON text that `from_json` reads back (ints stay ints)."""
        return json.dumps({"problem_type": self.problem_type, "names": list(self.names),
                           "separator": self.separator}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> LabelVocab:
        """The vocabulary `to_json` wrote (e.g. saved beside a fine-tuned model)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"label vocabulary is not valid JSON: {err}") from None
        if not isinstance(data, dict) or "problem_type" not in data:
            raise DataError("label vocabulary JSON must be an object with key 'problem_type'")
        unknown = set(data) - {"problem_type", "names", "separator"}
        if unknown:
            raise DataError(f"label vocabulary JSON has unknown keys {sorted(unknown)}")
        return cls(data["problem_type"], tuple(data.get("names", ())), data.get("separator", "|"))
