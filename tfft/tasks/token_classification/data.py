"""Token-classification data: CoNLL files and JSON Lines (token lists or character spans) into `TokenExamples`.

    >>> train = read_token_examples("data/ner-wnut16/train.conll")             # word TAB tag
    >>> train.words[0][:3], train.tags[0][:3], train.where(0)
    (['@paulwalk', 'It', "'s"], ['O', 'O', 'O'], 'data/ner-wnut16/train.conll, line 1')
    >>> spans = read_token_examples("dev.jsonl")   # {"text": ..., "entities": [{"start", "end", "label"}]}
    >>> spans.words[0], spans.word_offsets[0]      # words and their [start, end) in spans.texts[0]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import unicodedata
from collections.abc import Sequence

from tfft.data.examples import RowCollector, SkippedRows
from tfft.data.readers import _read_text
from tfft.errors import DataError
from tfft.tasks.token_classification.schemes import check_tag, convert, scheme_name

logger = logging.getLogger("tfft")

FORMATS = {".conll": "conll", ".txt": "conll", ".tsv": "conll", ".iob": "conll", ".bio": "conll",
           ".jsonl": "jsonl", ".json": "jsonl"}
_DOCSTART = "-DOCSTART-"


@dataclasses.dataclass
class TokenExamples:
    """Sentences of words, with one tag per word, read from one file, in file order.

    `tags` is None when no tags were read (`has_tags=False`, prediction). `texts` and
    `word_offsets` are set for the character-span format only: the original text of each
    record and each word's [start, end) in it, in code points (Python `str` indices).
    `lines[i]` is the 1-based line where sentence i starts, so later errors can still name it.
    """

    words: list[list[str]]
    tags: list[list[str]] | None
    texts: list[str] | None
    word_offsets: list[list[tuple[int, int]]] | None
    lines: list[int]
    source: str
    skipped: SkippedRows = dataclasses.field(default_factory=SkippedRows)
    scheme: str = "IOB2"
    format: str = "conll"

    def __len__(self) -> int:
        return len(self.words)

    def where(self, index: int) -> str:
        """Where sentence `index` came from, e.g. "data/dev.conll, line 7"."""
        return f"{self.source}, line {self.lines[index]}"

    def where_word(self, index: int, word: int) -> str:
        """Where word `word` of sentence `index` came from: its CoNLL line, or its record's line and position."""
        if self.format == "conll":
            return f"{self.source}, line {self.lines[index] + word}"
        return f"{self.source}, line {self.lines[index]}, word {word + 1}"


class _BadRow(Exception):
    """One line or record is bad; its message is the reason."""


def split_words(text: str, boundaries: Sequence[int] = ()) -> tuple[list[str], list[tuple[int, int]]]:
    """Words of `text` and their [start, end) offsets: runs of non-space characters, with each
    punctuation or symbol character (Unicode category P* or S*, emoji included) a word of its own,
    also split at every offset in `boundaries` (entity starts and ends). The span reader uses it;
    use it for raw text at prediction time so words come out the same.

        >>> split_words("Zoë's café, São Paulo!")
        (['Zoë', "'", 's', 'café', ',', 'São', 'Paulo', '!'], [(0, 3), (3, 4), (4, 5), ...])
    """
    cuts = set(boundaries)
    words, offsets, start = [], [], None
    for i, ch in enumerate(text):
        alone = unicodedata.category(ch)[0] in "PS"
        if start is not None and (ch.isspace() or alone or i in cuts):
            words.append(text[start:i])
            offsets.append((start, i))
            start = None
        if ch.isspace():
            continue
        if alone:
            words.append(ch)
            offsets.append((i, i + 1))
        elif start is None:
            start = i
    if start is not None:
        words.append(text[start:])
        offsets.append((start, len(text)))
    return words, offsets


def read_token_examples(path: str | os.PathLike, *, format: str | None = None, tag_column: int = -1,
                        word_column: int = 0, scheme: str = "IOB2", on_bad_row: str = "error",
                        has_tags: bool = True, tag_names: Sequence[str] | None = None) -> TokenExamples:
    """Read sentences of words and their tags from a CoNLL or JSON Lines file.

    Args:
        path: the file; its format comes from the suffix (.conll, .txt, .tsv, .iob, .bio: CoNLL;
            .jsonl, .json: JSON Lines) unless `format` ("conll" or "jsonl") is given.
        tag_column, word_column: CoNLL columns (0-based; negative counts from the end) of the tag
            and the word. The default reads the word first and the tag last.
        scheme: the tag scheme, "IOB2" (BIO), "IOBES" (BIOES) or "IO". Tags read from a file are
            checked against it and kept as written (`schemes.convert` rewrites them); span files
            are tagged in it.
        on_bad_row: "error" raises a `DataError` naming the file and line at the first bad line;
            "skip" drops the whole sentence (or record) holding it and counts it once in
            `skipped` (logged as a warning).
        has_tags: False reads words only (files for prediction); `tags` is then None.
        tag_names: names for integer tags in JSON Lines (`tag_names[i]` for tag i).

    CoNLL: one word a line, columns split by TABs (or by runs of spaces on a line without a TAB,
    as CoNLL-2003 writes them), a blank line between sentences; `-DOCSTART-` lines end a
    sentence and are dropped. JSON Lines: `{"tokens": [...], "tags": [...]}` ("words" and
    "ner_tags" also work), or spans `{"text": ..., "entities": [{"start": 0, "end": 5, "label":
    "PER"}]}` with [start, end) in code points; a file whose first record has "text" or
    "entities" is read as spans. Span texts are split by `split_words`, also at each entity's
    edges, so an entity covers whole words; whitespace at an entity's edges is trimmed off it.

    Ill-formed tag sequences (IOB2 `I-PER` with no `B-PER` before it) are kept as they are: real
    data has them, and `entity_metrics` reads them as seqeval does.

    Example:
        conll2003 = read_token_examples("eng.train", format="conll")    # word POS chunk NER
        chunks = read_token_examples("eng.train", format="conll", tag_column=2)
    """
    path = pathlib.Path(path)
    fmt = format or FORMATS.get(path.suffix.lower())
    if fmt not in ("conll", "jsonl"):
        wanted = f"format {format!r}" if format else f"suffix {path.suffix!r}"
        raise DataError(f"{path}: unknown token-classification data {wanted}; expected one of "
                        f"{', '.join(sorted(FORMATS))} (or format=conll/jsonl)")
    try:
        scheme = scheme_name(scheme)
        names = [_check(name, scheme, f"tag_names[{i}]") for i, name in enumerate(tag_names or [])]
    except (ValueError, _BadRow) as err:
        raise DataError(f"{path}: {err}") from None
    if has_tags and word_column == tag_column:
        raise DataError(f"{path}: word_column and tag_column are both {word_column}")
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    rows = RowCollector(str(path), text_column="words", text_pair_column=None, label_column=None,
                        on_bad_row=on_bad_row)
    out = TokenExamples([], [] if has_tags else None, None, None, [], str(path), rows.skipped, scheme, fmt)
    text = _read_text(path)
    if fmt == "conll":
        _read_conll(text, rows, out, word_column=word_column, tag_column=tag_column, has_tags=has_tags)
    else:
        _read_jsonl(text, rows, out, has_tags=has_tags, tag_names=names or None)
    if rows.skipped.count:
        logger.warning("%s: %s", out.source, rows.skipped)
    if not out.words:
        raise rows.fail("no sentences" + (f" ({rows.skipped})" if rows.skipped.count else ""))
    return out


def _check(tag, scheme: str, where: str) -> str:
    if isinstance(tag, str) and not tag.strip():
        raise _BadRow(f"{where} is empty")
    try:
        check_tag(tag, scheme)
    except ValueError as err:
        raise _BadRow(f"{where}: {err}") from None
    return tag


def _lines(text: str):
    # Split on "\n" only: str.splitlines would also break at U+2028 and friends, which words and JSON strings may hold.
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.removesuffix("\r")


def _conll_fields(line: str, word_column: int, tag_column: int, has_tags: bool, scheme: str):
    fields = [f.strip() for f in line.split("\t")] if "\t" in line else [f for f in line.split(" ") if f]
    n = len(fields)
    w = word_column if word_column >= 0 else n + word_column
    t = tag_column if tag_column >= 0 else n + tag_column
    if not 0 <= w < n or (has_tags and (not 0 <= t < n or t == w)):
        need = f"a word (word_column={word_column})" + (f" and a tag (tag_column={tag_column})" if has_tags else "")
        raise _BadRow(f"too few columns: need {need}, got {n} column{'s' if n != 1 else ''}")
    if not fields[w]:
        raise _BadRow(f"empty word (column {w})")
    return fields[w], _check(fields[t], scheme, f"tag (column {t})") if has_tags else None


def _read_conll(text: str, rows: RowCollector, out: TokenExamples, *, word_column: int, tag_column: int,
                has_tags: bool) -> None:
    words, tags, first, bad = [], [], None, False
    for number, line in _lines(text + "\n"):
        if not line.strip() or line.split()[0] == _DOCSTART:
            if words and not bad:
                out.words.append(words)
                out.lines.append(first)
                if has_tags:
                    out.tags.append(tags)
            words, tags, first, bad = [], [], None, False
            continue
        first = first or number
        if bad:
            continue  # the rest of a sentence already dropped
        try:
            word, tag = _conll_fields(line, word_column, tag_column, has_tags, out.scheme)
        except _BadRow as err:
            rows.bad_row(number, str(err))
            bad = True
            continue
        words.append(word)
        tags.append(tag)


def _read_jsonl(text: str, rows: RowCollector, out: TokenExamples, *, has_tags: bool,
                tag_names: list[str] | None) -> None:
    spans = None  # the file's kind, from its first object
    for number, line in _lines(text):
        if not line.strip():
            continue
        try:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise _BadRow(f"malformed JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(record, dict):
                raise _BadRow(f"expected a JSON object, got {type(record).__name__}")
            if spans is None:
                spans = "text" in record or "entities" in record
                if spans:
                    out.texts, out.word_offsets = [], []
            if spans:
                words, tags, offsets = _span_record(record, has_tags, out.scheme)
            else:
                words, tags = _token_record(record, has_tags, out.scheme, tag_names)
        except _BadRow as err:
            rows.bad_row(number, str(err))
            continue
        out.words.append(words)
        out.lines.append(number)
        if has_tags:
            out.tags.append(tags)
        if spans:
            out.texts.append(record["text"])
            out.word_offsets.append(offsets)


def _key(record: dict, names: tuple[str, str], hint: str = "") -> str:
    for name in names:
        if name in record:
            return name
    present = ", ".join(map(repr, record)) or "none"
    raise _BadRow(f"no {names[0]!r} (or {names[1]!r}) key{hint} (keys present: {present})")


def _token_record(record: dict, has_tags: bool, scheme: str, tag_names: list[str] | None):
    key = _key(record, ("tokens", "words"))
    words = record[key]
    if not isinstance(words, list):
        raise _BadRow(f"{key!r} must be a list of strings, got {type(words).__name__}")
    if not words:
        raise _BadRow(f"{key!r} is empty")
    for i, word in enumerate(words):
        if not isinstance(word, str):
            raise _BadRow(f"{key}[{i}] must be a string, got {type(word).__name__} {word!r}")
        if not word.strip():
            raise _BadRow(f"{key}[{i}] is empty")
    if not has_tags:
        return words, None
    tag_key = _key(record, ("tags", "ner_tags"), "; read files without tags with has_tags=False")
    tags = record[tag_key]
    if not isinstance(tags, list):
        raise _BadRow(f"{tag_key!r} must be a list, got {type(tags).__name__}")
    if len(tags) != len(words):
        raise _BadRow(f"{len(tags)} {tag_key} for {len(words)} {key}")
    named = []
    for i, tag in enumerate(tags):
        if isinstance(tag, int) and not isinstance(tag, bool):
            if tag_names is None:
                raise _BadRow(f"{tag_key}[{i}] is the integer {tag}; pass tag_names to name integer tags")
            if not 0 <= tag < len(tag_names):
                raise _BadRow(f"{tag_key}[{i}] is {tag}, outside 0..{len(tag_names) - 1} ({len(tag_names)} tag_names)")
            tag = tag_names[tag]
        named.append(_check(tag, scheme, f"{tag_key}[{i}]"))
    return words, named


def _span(text: str, index: int, entity) -> tuple[int, int, str]:
    """One entity's checked [start, end) with whitespace trimmed off its edges, and its label."""
    where = f"entities[{index}]"
    if not isinstance(entity, dict):
        raise _BadRow(f"{where} must be an object with start, end and label, got {type(entity).__name__}")
    start, end, label = entity.get("start"), entity.get("end"), entity.get("label")
    for name, value in (("start", start), ("end", end)):
        if type(value) is not int:
            raise _BadRow(f"{where}: {name} must be an integer, got {value!r}")
    if start < 0:
        raise _BadRow(f"{where}: negative start {start}")
    if start >= end:
        raise _BadRow(f"{where}: start {start} is not before end {end}")
    if end > len(text):
        raise _BadRow(f"{where}: end {end} is past the end of the text ({len(text)} characters)")
    if not isinstance(label, str) or not label.strip():
        raise _BadRow(f"{where}: label must be a non-empty string, got {label!r}")
    _check(f"B-{label}", "IOB2", f"{where}: label {label!r}")
    first, last = start, end
    while first < last and text[first].isspace():
        first += 1
    while last > first and text[last - 1].isspace():
        last -= 1
    if first == last:
        raise _BadRow(f"{where} [{start}, {end}) covers only whitespace ({text[start:end]!r})")
    return first, last, label


def _span_record(record: dict, has_tags: bool, scheme: str):
    text = record.get("text")
    if "text" not in record:
        raise _BadRow("no 'text' key (span records are {\"text\": ..., \"entities\": [...]})")
    if not isinstance(text, str):
        raise _BadRow(f"'text' must be a string, got {type(text).__name__}")
    entities = []
    if has_tags:
        if "entities" not in record:
            raise _BadRow("no 'entities' key ([] for a text without entities; read files without "
                          "entities with has_tags=False)")
        if not isinstance(record["entities"], list):
            raise _BadRow(f"'entities' must be a list, got {type(record['entities']).__name__}")
        entities = sorted((*_span(text, i, e), i) for i, e in enumerate(record["entities"]))
        for (prev_start, prev_end, _, j), (start, end, _, i) in zip(entities, entities[1:]):
            if start < prev_end:
                raise _BadRow(f"entities[{i}] [{start}, {end}) {text[start:end]!r} overlaps entities[{j}] "
                              f"[{prev_start}, {prev_end}) {text[prev_start:prev_end]!r}")
    words, offsets = split_words(text, [edge for start, end, *_ in entities for edge in (start, end)])
    if not words:
        raise _BadRow("'text' has no words")
    if not has_tags:
        return words, None, offsets
    tags, k = [], 0
    for start, _ in offsets:
        while k < len(entities) and entities[k][1] <= start:
            k += 1
        inside = k < len(entities) and entities[k][0] <= start
        tags.append(f"{'B' if start == entities[k][0] else 'I'}-{entities[k][2]}" if inside else "O")
    return words, convert(tags, "IOB2", scheme), offsets
