"""`Examples`: the rows a reader took from one source, and the one path every reader sends rows through."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from tfft.errors import DataError

logger = logging.getLogger("tfft")

BAD_ROW_POLICIES = ("error", "skip")
_REASONS_KEPT = 5


@dataclasses.dataclass
class SkippedRows:
    """Bad rows a reader skipped under `on_bad_row="skip"`: how many, and the first few reasons."""

    count: int = 0
    reasons: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        more = f"; ... {self.count - len(self.reasons)} more" if self.count > len(self.reasons) else ""
        rows = "row" if self.count == 1 else "rows"
        return f"{self.count} bad {rows} skipped" + (": " + "; ".join(self.reasons) + more if self.count else "")


@dataclasses.dataclass
class Examples:
    """Text examples read from one file or dataset, in source order.

    `labels` holds the raw values (str, int, float or a list of them for multi-label), or is None
    when no label column was read (prediction files). `locations[i]` is the 1-based line (files)
    or record number (TFRecord, TFDS) of example i, so errors found later still name the row.
    `label_names` is a class order declared by the source itself (a TFDS `ClassLabel`), or None.
    """

    texts: list[str]
    text_pairs: list[str] | None
    labels: list | None
    source: str
    locations: list[int]
    unit: str = "line"
    label_column: str | None = "label"
    label_names: tuple | None = None
    skipped: SkippedRows = dataclasses.field(default_factory=SkippedRows)

    def __len__(self) -> int:
        return len(self.texts)

    def where(self, index: int) -> str:
        """Where example `index` came from, e.g. "data/dev.jsonl, line 7"."""
        return f"{self.source}, {self.unit} {self.locations[index]}"


class RowCollector:
    """Checks each row a reader yields (columns present, texts non-empty strings, label present) and
    either raises one `DataError` naming the source, row and column, or skips and counts the row.

    Readers only parse their format; everything about what a valid row is lives here.
    """

    def __init__(self, source: str, *, text_column: str, text_pair_column: str | None,
                 label_column: str | None, on_bad_row: str = "error", unit: str = "line"):
        if on_bad_row not in BAD_ROW_POLICIES:
            raise DataError(f"on_bad_row must be one of {BAD_ROW_POLICIES}, got {on_bad_row!r}")
        self.source = source
        self.unit = unit
        self.text_column = text_column
        self.text_pair_column = text_pair_column
        self.label_column = label_column
        self.on_bad_row = on_bad_row
        self.texts: list[str] = []
        self.text_pairs: list[str] | None = [] if text_pair_column else None
        self.labels: list | None = [] if label_column else None
        self.locations: list[int] = []
        self.skipped = SkippedRows()

    @property
    def columns(self) -> list[str]:
        """The columns every row must have."""
        return [c for c in (self.text_column, self.text_pair_column, self.label_column) if c]

    def fail(self, message: str) -> DataError:
        """An error about the whole source (a missing file, a header without a needed column)."""
        return DataError(f"{self.source}: {message}")

    def bad_row(self, location: int, reason: str) -> None:
        """Raise for a bad row, or count it when skipping."""
        message = f"{self.source}, {self.unit} {location}: {reason}"
        if self.on_bad_row == "error":
            raise DataError(message)
        self.skipped.count += 1
        if len(self.skipped.reasons) < _REASONS_KEPT:
            self.skipped.reasons.append(f"{self.unit} {location}: {reason}")

    def add(self, location: int, row: Mapping) -> None:
        """Check one parsed row (column -> value) and keep it, or report it as bad."""
        values = {}
        for column in self.columns:
            if column not in row:
                present = ", ".join(map(repr, row)) or "none"
                return self.bad_row(location, f"column {column!r} is missing (columns present: {present})")
            values[column] = row[column]
        for column in (self.text_column, self.text_pair_column):
            if not column:
                continue
            text = values[column]
            if not isinstance(text, str):
                return self.bad_row(location, f"column {column!r} must be a string, got {type(text).__name__}")
            if not text.strip():
                return self.bad_row(location, f"column {column!r} is empty")
        if self.label_column and values[self.label_column] is None:
            return self.bad_row(location, f"column {self.label_column!r} is null")
        self.texts.append(values[self.text_column])
        if self.text_pairs is not None:
            self.text_pairs.append(values[self.text_pair_column])
        if self.labels is not None:
            self.labels.append(values[self.label_column])
        self.locations.append(location)

    def build(self, label_names: tuple | None = None) -> Examples:
        """The examples kept; logs a warning on the `tfft` logger when rows were skipped."""
        if self.skipped.count:
            logger.warning("%s: %s", self.source, self.skipped)
        if not self.texts:
            raise self.fail("no examples" + (f" ({self.skipped})" if self.skipped.count else ""))
        return Examples(texts=self.texts, text_pairs=self.text_pairs, labels=self.labels, source=self.source,
                        locations=self.locations, unit=self.unit, label_column=self.label_column,
                        label_names=label_names, skipped=self.skipped)
