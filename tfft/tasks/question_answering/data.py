"""`read_squad`: SQuAD-format question answering data (official nested JSON v1.1 / v2.0, Hugging Face's
flat JSON and flat JSON Lines) into `QAExamples`, every question checked against its context."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib

from tfft.data.examples import BAD_ROW_POLICIES, SkippedRows
from tfft.data.readers import _read_text
from tfft.errors import DataError

logger = logging.getLogger("tfft")

_REASONS_KEPT = 5


@dataclasses.dataclass
class QAExamples:
    """Questions over contexts, in source order.

    `answers[i]` lists example i's gold answers as (text, character start in `contexts[i]`); an
    empty list means unanswerable (SQuAD v2 `is_impossible`). `titles[i]` is the article title, or
    None when the source has none. `locations[i]` says where example i is in `source`
    ("line 7" for JSON Lines, "question id 5733be28" for JSON), so later errors can name it.
    """

    ids: list[str]
    questions: list[str]
    contexts: list[str]
    answers: list[list[tuple[str, int]]]
    is_impossible: list[bool]
    titles: list[str | None]
    locations: list[str]
    source: str = "<memory>"
    skipped: SkippedRows = dataclasses.field(default_factory=SkippedRows)

    def __post_init__(self):
        fields = ("ids", "questions", "contexts", "answers", "is_impossible", "titles", "locations")
        lengths = {name: len(getattr(self, name)) for name in fields}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"QAExamples fields differ in length: {lengths}")

    def __len__(self) -> int:
        return len(self.ids)

    def where(self, index: int) -> str:
        """Where example `index` came from, e.g. "dev-v2.0.json, question id 5ad3ed86"."""
        return f"{self.source}, {self.locations[index]}"


class _BadQuestion(Exception):
    """One question (or paragraph) is invalid; the message says why."""


def read_squad(path: str | os.PathLike, *, on_bad_row: str = "error") -> QAExamples:
    """Read SQuAD-format question answering examples.

    Formats, by suffix:
        .json: the official SQuAD v1.1 / v2.0 file (`{"version", "data": [{"title", "paragraphs":
            [{"context", "qas": [{"id", "question", "answers": [{"text", "answer_start"}],
            "is_impossible"}]}]}]}`), or the flat form Hugging Face datasets write
            (`{"data": [{"id", "title", "question", "context", "answers": {"text": [...],
            "answer_start": [...]}}]}`), where empty answers mean unanswerable.
        .jsonl: one flat record per line.

    Every question is checked: id, question and context present, non-empty strings; ids unique;
    each answer's `answer_start` points at its text in the context; a question not marked
    `is_impossible` has answers (and one marked so has none); flat answer lists have equal lengths.
    A bad question raises one `DataError` naming the file and the line (JSON Lines) or the
    question id (JSON; a JSON path such as data[0].paragraphs[2] when there is no id), or with
    `on_bad_row="skip"` is dropped and counted in `skipped`. Malformed JSON in a .json file fails
    the whole file.

    Example:
        dev = read_squad("dev-v2.0.json")
        dev.questions[0], dev.answers[0]     # ("In what country is Normandy located?", [("France", 159), ...])
    """
    path = pathlib.Path(path)
    if on_bad_row not in BAD_ROW_POLICIES:
        raise DataError(f"on_bad_row must be one of {BAD_ROW_POLICIES}, got {on_bad_row!r}")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".jsonl"):
        raise DataError(f"{path}: unknown question answering data suffix {path.suffix!r}; expected .json or .jsonl")
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    collector = _Collector(str(path), on_bad_row)
    text = _read_text(path)
    if suffix == ".jsonl":
        _read_jsonl(text, collector)
    else:
        _read_json(text, collector)
    return collector.build()


class _Collector:
    """Keeps valid questions; raises for a bad one, or counts it when skipping."""

    def __init__(self, source: str, on_bad_row: str):
        self.source = source
        self.on_bad_row = on_bad_row
        self.skipped = SkippedRows()
        self.columns = {name: [] for name in ("ids", "questions", "contexts", "answers", "is_impossible",
                                              "titles", "locations")}
        self.seen: dict[str, str] = {}  # id -> where it was first read

    def fail(self, message: str) -> DataError:
        return DataError(f"{self.source}: {message}")

    def bad(self, location: str, reason: str, count: int = 1) -> None:
        if self.on_bad_row == "error":
            raise DataError(f"{self.source}, {location}: {reason}")
        self.skipped.count += count
        if len(self.skipped.reasons) < _REASONS_KEPT:
            self.skipped.reasons.append(f"{location}: {reason}")

    def add(self, *, id, question, context, answers, is_impossible, title, location, path) -> None:
        """Keep one checked question; `path` is where it is in the file (a line, or a JSON path)."""
        if id in self.seen:
            at = "" if path == location else f" at {path}"
            return self.bad(location, f"duplicate id {id!r}{at} (first at {self.seen[id]})")
        self.seen[id] = path
        for name, value in (("ids", id), ("questions", question), ("contexts", context), ("answers", answers),
                            ("is_impossible", is_impossible), ("titles", title), ("locations", location)):
            self.columns[name].append(value)

    def build(self) -> QAExamples:
        if self.skipped.count:
            logger.warning("%s: %s", self.source, self.skipped)
        if not self.columns["ids"]:
            raise self.fail("no questions" + (f" ({self.skipped})" if self.skipped.count else ""))
        return QAExamples(**self.columns, source=self.source, skipped=self.skipped)


# -- field checks (each raises _BadQuestion) ------------------------------------------------------
def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def _text(record: dict, key: str, what: str) -> str:
    if key not in record:
        present = ", ".join(map(repr, record)) or "none"
        raise _BadQuestion(f"{what} has no {key!r} (keys present: {present})")
    value = record[key]
    if not isinstance(value, str):
        raise _BadQuestion(f"{key!r} must be a string, got {_type_name(value)}")
    if not value.strip():
        raise _BadQuestion(f"{key!r} is empty")
    return value


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise _BadQuestion(f"{what} must be a JSON object, got {_type_name(value)}")
    return value


def _list(value, what: str) -> list:
    if value is None:
        raise _BadQuestion(f"{what} is missing")
    if not isinstance(value, list):
        raise _BadQuestion(f"{what} must be a list, got {_type_name(value)}")
    return value


def _answer(text, start, context: str, number: int) -> tuple[str, int]:
    if not isinstance(text, str):
        raise _BadQuestion(f"answer {number}: text must be a string, got {_type_name(text)}")
    if not text:
        raise _BadQuestion(f"answer {number}: text is empty")
    if not isinstance(start, int) or isinstance(start, bool):
        raise _BadQuestion(f"answer {number}: answer_start must be an integer, got {_type_name(start)}")
    found = context[start:start + len(text)] if 0 <= start else ""
    if found != text:
        raise _BadQuestion(f"answer {number}: answer_start {start} does not point at {text!r} in the context "
                           f"(context[{start}:{start + len(text)}] is {found!r})")
    return text, start


def _title(record: dict) -> str | None:
    title = record.get("title")
    if title is not None and not isinstance(title, str):
        raise _BadQuestion(f"'title' must be a string, got {_type_name(title)}")
    return title


def _nested_answers(qa: dict, context: str, v1: bool) -> tuple[list[tuple[str, int]], bool]:
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise _BadQuestion(f"'is_impossible' must be true or false, got {_type_name(impossible)}")
    if "answers" not in qa and not impossible:
        raise _BadQuestion("the question has no 'answers'")
    answers = []
    for number, answer in enumerate(_list(qa.get("answers", []), "'answers'"), start=1):
        answer = _object(answer, f"answer {number}")
        if "text" not in answer or "answer_start" not in answer:
            raise _BadQuestion(f"answer {number} needs 'text' and 'answer_start' (keys present: "
                               f"{', '.join(map(repr, answer)) or 'none'})")
        answers.append(_answer(answer["text"], answer["answer_start"], context, number))
    if impossible and answers:
        raise _BadQuestion(f"is_impossible is true but it has {len(answers)} answers")
    if not impossible and not answers:
        if v1:
            raise _BadQuestion("no answers (every SQuAD v1.1 question has at least one)")
        raise _BadQuestion("no answers, and not marked is_impossible")
    return answers, impossible


def _flat_answers(record: dict, context: str, v1: bool) -> list[tuple[str, int]]:
    if "answers" not in record:
        raise _BadQuestion("the record has no 'answers' (use {\"text\": [], \"answer_start\": []} for none)")
    answers = _object(record["answers"], "'answers'")
    if "text" not in answers or "answer_start" not in answers:
        raise _BadQuestion("'answers' needs the lists 'text' and 'answer_start'")
    texts = _list(answers["text"], "answers 'text'")
    starts = _list(answers["answer_start"], "answers 'answer_start'")
    if len(texts) != len(starts):
        raise _BadQuestion(f"answers have {len(texts)} texts but {len(starts)} answer_start values")
    if v1 and not texts:
        raise _BadQuestion("no answers (every SQuAD v1.1 question has at least one)")
    return [_answer(t, s, context, n) for n, (t, s) in enumerate(zip(texts, starts), start=1)]


def _is_v1(document: dict) -> bool:
    return str(document.get("version", "")).lstrip("v").startswith("1")


# -- formats -------------------------------------------------------------------------------------
def _add_flat(collector: _Collector, record, path: str, *, by_id: bool, v1: bool) -> None:
    """One flat record at `path` ("line 3", "data[2]"), reported by its question id once known if `by_id`."""
    where = path
    try:
        record = _object(record, "the record")
        id = _text(record, "id", "the record")
        if by_id:
            where = f"question id {id}"
        question = _text(record, "question", "the record")
        context = _text(record, "context", "the record")
        answers = _flat_answers(record, context, v1)
        title = _title(record)
    except _BadQuestion as err:
        return collector.bad(where, str(err))
    collector.add(id=id, question=question, context=context, answers=answers, is_impossible=not answers,
                  title=title, location=where, path=path)


def _read_jsonl(text: str, collector: _Collector) -> None:
    # Split on "\n" only: str.splitlines would also break at U+2028 and friends, which JSON strings may hold raw.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            collector.bad(f"line {number}", f"malformed JSON ({err.msg} at column {err.colno})")
            continue
        _add_flat(collector, record, f"line {number}", by_id=False, v1=False)


def _read_json(text: str, collector: _Collector) -> None:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        where = f"{collector.source}, line {err.lineno} column {err.colno}"
        raise DataError(f"{where}: malformed JSON ({err.msg})") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        got = "an object without a 'data' list" if isinstance(document, dict) else _type_name(document)
        raise collector.fail(f"expected a SQuAD JSON object with a 'data' list, got {got}")
    v1 = _is_v1(document)
    articles = document["data"]
    if any(isinstance(article, dict) and "paragraphs" in article for article in articles):
        for a, article in enumerate(articles):
            _add_article(collector, article, f"data[{a}]", v1)
    else:
        for r, record in enumerate(articles):
            _add_flat(collector, record, f"data[{r}]", by_id=True, v1=v1)


def _add_article(collector: _Collector, article, path: str, v1: bool) -> None:
    try:
        article = _object(article, "an article")
        title = _title(article)
        paragraphs = _list(article.get("paragraphs"), "'paragraphs'")
    except _BadQuestion as err:
        return collector.bad(path, f"{err} (the whole article is skipped)")
    for p, paragraph in enumerate(paragraphs):
        where = f"{path}.paragraphs[{p}]"
        try:
            paragraph = _object(paragraph, "a paragraph")
            qas = _list(paragraph.get("qas"), "'qas'")
            context = _text(paragraph, "context", "the paragraph")
        except _BadQuestion as err:
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            count = max(1, len(qas) if isinstance(qas, list) else 1)
            collector.bad(where, f"{err} (its {count} question(s) are skipped)", count=count)
            continue
        for q, qa in enumerate(qas):
            _add_nested_question(collector, qa, context, title, f"{where}.qas[{q}]", v1)


def _add_nested_question(collector: _Collector, qa, context: str, title, path: str, v1: bool) -> None:
    where = path
    try:
        qa = _object(qa, "a question")
        id = _text(qa, "id", "the question")
        where = f"question id {id}"
        question = _text(qa, "question", "the question")
        answers, impossible = _nested_answers(qa, context, v1)
    except _BadQuestion as err:
        return collector.bad(where, str(err))
    collector.add(id=id, question=question, context=context, answers=answers, is_impossible=impossible,
                  title=title, location=where, path=path)
