"""`read_tfds`: a TensorFlow Datasets split, already prepared in a local `data_dir`, into `Examples`."""

from __future__ import annotations

import os

import numpy as np

from tfft.data.examples import Examples, RowCollector
from tfft.errors import DataError


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DataError(
            f"reading TensorFlow Datasets needs the tensorflow-datasets package ({err}); "
            "pip install tensorflow-datasets"
        ) from None
    return tfds


def _python_value(value, feature, tfds):
    """A numpy value from `tfds.as_numpy` as Python; ClassLabel ids become their names."""
    if isinstance(feature, tfds.features.Sequence):
        return [_python_value(v, feature.feature, tfds) for v in value]
    if isinstance(feature, tfds.features.ClassLabel):
        # Unlabelled splits (GLUE's test) store -1: a null label, so a bad row unless label_column=None.
        return feature.int2str(int(value)) if int(value) >= 0 else None
    if isinstance(value, np.ndarray) and value.ndim:
        return [_python_value(v, feature, tfds) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        value = value.item()
    return value.decode("utf-8") if isinstance(value, bytes) else value


def read_tfds(name: str, *, split: str, data_dir: str | os.PathLike, text_column: str = "text",
              text_pair_column: str | None = None, label_column: str | None = "label",
              on_bad_row: str = "error") -> Examples:
    """Read a split of a TFDS dataset prepared under `data_dir`; nothing is downloaded.

    `name` is what `tfds.load` takes ("imdb_reviews", "glue/sst2:2.0.0"); `split` may slice
    ("train[:10%]"). A `ClassLabel` label becomes its class names, and `Examples.label_names`
    keeps the dataset's class order for `LabelVocab.from_examples`. Rows are checked like a
    file's (see `read_examples`); errors name the dataset, split and 1-based record.

    Example:
        train = read_tfds("imdb_reviews", split="train", data_dir="~/tensorflow_datasets")
    """
    tfds = _import_tfds()
    source = f"tfds {name} [{split}]"
    data_dir = os.path.expanduser(str(data_dir))
    try:
        dataset, info = tfds.load(name, split=split, data_dir=data_dir, download=False, with_info=True,
                                  shuffle_files=False)
    except Exception as err:  # tfds raises many types (AssertionError, DatasetNotFoundError, ValueError, ...)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{source}: cannot load from data_dir {data_dir!r}: {first}") from err
    rows = RowCollector(source, text_column=text_column, text_pair_column=text_pair_column,
                        label_column=label_column, on_bad_row=on_bad_row, unit="record")
    features = info.features
    missing = [c for c in rows.columns if c not in features]
    if missing:
        raise rows.fail(f"no feature {', '.join(map(repr, missing))} (features: {', '.join(map(repr, features))})")
    for number, record in enumerate(tfds.as_numpy(dataset), start=1):
        try:
            row = {c: _python_value(record[c], features[c], tfds) for c in rows.columns}
        except UnicodeDecodeError as err:
            rows.bad_row(number, f"a text feature is not valid UTF-8 ({err.reason})")
            continue
        rows.add(number, row)
    label = features[label_column] if label_column else None
    if isinstance(label, tfds.features.Sequence):
        label = label.feature
    names = tuple(label.names) if isinstance(label, tfds.features.ClassLabel) else None
    return rows.build(label_names=names)
