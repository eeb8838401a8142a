"""Readers for CSV, TSV, JSON Lines and TFRecord files into `Examples`; every row goes through `RowCollector`."""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import re

from tfft.data.examples import Examples, RowCollector
from tfft.errors import DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".tfrecord": "tfrecord",
           ".tfrecords": "tfrecord"}
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INT = re.compile(r"[+-]?\d+")


def read_examples(path: str | os.PathLike, *, format: str | None = None, text_column: str = "text",
                  text_pair_column: str | None = None, label_column: str | None = "label",
                  on_bad_row: str = "error") -> Examples:
    """Read text examples (and labels) from a CSV, TSV, JSON Lines or TFRecord file.

    Args:
        path: the file. Its format comes from the suffix (.csv, .tsv, .jsonl/.json, .tfrecord)
            unless `format` ("csv", "tsv", "jsonl", "tfrecord") is given.
        text_column, text_pair_column: columns (keys, features) holding the text and the optional
            second segment of a sentence pair.
        label_column: the label column, or None for files without labels (prediction).
        on_bad_row: "error" raises a `DataError` at the first bad row; "skip" drops bad rows and
            counts them in `Examples.skipped` (logged as a warning).

    A bad row is a malformed line (invalid JSON, not an object, wrong CSV field count, an
    unparsable TFRecord), a missing column, an empty or non-string text, or a null label. Errors
    name the file, the 1-based line (record for TFRecord) and the column. A header without a
    needed column fails the whole file whatever `on_bad_row` says.

    CSV files use standard quoting; TSV files use none (tabs separate, quotes are text), as GLUE's
    do. In both, label cells that are numbers become ints or floats. In JSON Lines the label is
    any JSON value; a list holds the labels of a multi-label row.

    Example:
        train = read_examples("train.jsonl")                      # {"text": ..., "label": ...}
        pairs = read_examples("dev.tsv", text_column="sentence1", text_pair_column="sentence2")
    """
    path = pathlib.Path(path)
    fmt = format or FORMATS.get(path.suffix.lower())
    if fmt not in set(FORMATS.values()):
        known = ", ".join(sorted(FORMATS))
        wanted = f"format {format!r}" if format else f"suffix {path.suffix!r}"
        raise DataError(f"{path}: unknown data {wanted}; expected one of {known} (or format=csv/tsv/jsonl/tfrecord)")
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    rows = RowCollector(str(path), text_column=text_column, text_pair_column=text_pair_column,
                        label_column=label_column, on_bad_row=on_bad_row,
                        unit="record" if fmt == "tfrecord" else "line")
    if fmt == "jsonl":
        _read_jsonl(path, rows)
    elif fmt == "tfrecord":
        _read_tfrecord(path, rows)
    else:
        _read_delimited(path, rows, delimiter="," if fmt == "csv" else "\t")
    return rows.build()


def _read_text(path: pathlib.Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not valid UTF-8 ({err.reason} at byte {err.start})") from None


def _read_jsonl(path: pathlib.Path, rows: RowCollector) -> None:
    # Split on "\n" only: str.splitlines would also break at U+2028 and friends, which JSON strings may hold raw.
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            rows.bad_row(number, f"malformed JSON ({err.msg} at column {err.colno})")
            continue
        if not isinstance(row, dict):
            rows.bad_row(number, f"expected a JSON object, got {type(row).__name__}")
            continue
        rows.add(number, row)


def _label_cell(cell: str):
    """A CSV label cell: numbers become int/float (so "1" matches JSON's 1); anything else stays text."""
    text = cell.strip()
    if _INT.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        return float(text)
    return cell


def _read_delimited(path: pathlib.Path, rows: RowCollector, delimiter: str) -> None:
    text = _read_text(path)
    # TSV cells are never quoted (GLUE-style); CSV follows RFC 4180 and may span lines inside quotes.
    options = {"quoting": csv.QUOTE_NONE} if delimiter == "\t" else {"strict": True}
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, **options)
    header, start = None, 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            if header is None:
                raise rows.fail(f"line {start}: malformed header ({err})") from None
            rows.bad_row(start, f"malformed line ({err})")
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank line
        if header is None:
            header = [name.strip() for name in fields]
            missing = [c for c in rows.columns if c not in header]
            if missing:
                raise rows.fail(f"line {line}: header has no column {', '.join(map(repr, missing))} "
                                f"(columns: {', '.join(map(repr, header))})")
            continue
        if len(fields) != len(header):
            rows.bad_row(line, f"malformed line: expected {len(header)} fields ({', '.join(header)}), "
                               f"got {len(fields)}")
            continue
        row = dict(zip(header, fields))
        if rows.label_column:
            row[rows.label_column] = _label_cell(row[rows.label_column])
        rows.add(line, row)
    if header is None:
        raise rows.fail("empty file (no header line)")


def _feature_value(feature):
    """A tf.train.Feature as Python: str/int/float for one value, a list otherwise."""
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
        values = [v.decode("utf-8") for v in feature.bytes_list.value]
    elif kind == "int64_list":
        values = [int(v) for v in feature.int64_list.value]
    elif kind == "float_list":
        values = [float(v) for v in feature.float_list.value]
    else:
        values = []
    return values[0] if len(values) == 1 else values


def _read_tfrecord(path: pathlib.Path, rows: RowCollector) -> None:
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    records = iter(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    number = 0
    while True:
        number += 1
        try:
            record = next(records)
        except StopIteration:
            break
        except tf.errors.OpError as err:  # truncated or corrupted file: nothing after it can be read
            rows.bad_row(number, f"unreadable TFRecord ({err.message.splitlines()[0]})")
            break
        try:
            example = tf.train.Example.FromString(record)
        except DecodeError:
            rows.bad_row(number, "malformed record: not a tf.train.Example")
            continue
        row = {name: None for name in example.features.feature}  # only the needed columns are decoded
        try:
            for name in rows.columns:
                if name in row:
                    bad = name
                    row[name] = _feature_value(example.features.feature[name])
        except UnicodeDecodeError as err:
            rows.bad_row(number, f"feature {bad!r} is not valid UTF-8 ({err.reason})")
            continue
        rows.add(number, row)
