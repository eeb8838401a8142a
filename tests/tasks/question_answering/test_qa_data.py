import json
import logging

import pytest

from tests.tasks.question_answering.conftest import QA_DATA
from tfft.errors import DataError
from tfft.tasks.question_answering.data import QAExamples, read_squad


def _load(name):
    return json.loads((QA_DATA / name).read_text(encoding="utf-8"))


def _write_json(tmp_path, document, name="bad.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def _write_jsonl(tmp_path, lines, name="bad.jsonl"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _fixture_lines():
    return (QA_DATA / "squad_flat.jsonl").read_text(encoding="utf-8").splitlines()


# -- every format ---------------------------------------------------------------------------------
def test_reads_official_v1():
    examples = read_squad(QA_DATA / "squad_v1.json")
    document = _load("squad_v1.json")
    qas = [(a["title"], p["context"], qa) for a in document["data"] for p in a["paragraphs"] for qa in p["qas"]]
    assert len(examples) == len(qas) == 18
    assert examples.ids == [qa["id"] for _, _, qa in qas]
    assert examples.questions == [qa["question"] for _, _, qa in qas]
    assert examples.contexts == [context for _, context, _ in qas]
    assert examples.titles == [title for title, _, _ in qas]
    assert examples.answers == [[(a["text"], a["answer_start"]) for a in qa["answers"]] for _, _, qa in qas]
    assert examples.is_impossible == [False] * 18
    assert examples.skipped.count == 0
    for i, answers in enumerate(examples.answers):
        for text, start in answers:
            assert examples.contexts[i][start:start + len(text)] == text
    assert examples.where(0) == f"{QA_DATA / 'squad_v1.json'}, question id {examples.ids[0]}"
    # Questions are kept as written; features strip the leading whitespace.
    assert "   Which structure was finished in 1930?" in examples.questions


def test_reads_official_v2_with_unanswerable_questions():
    examples = read_squad(QA_DATA / "squad_v2.json")
    assert len(examples) == 17
    impossible = [q for q, flag in zip(examples.questions, examples.is_impossible) if flag]
    assert impossible == ["Which city neighbours Hebei to the northwest?",
                          "How many districts did Beijing have in 1949?",
                          "What is the average discharge of the Nile?", "In what year was Manaus founded?"]
    # plausible_answers are not gold answers.
    assert all(answers == [] for answers, flag in zip(examples.answers, examples.is_impossible) if flag)
    assert all(answers for answers, flag in zip(examples.answers, examples.is_impossible) if not flag)


def test_answer_start_picks_the_occurrence_not_the_first_match():
    examples = read_squad(QA_DATA / "squad_v2.json")
    i = examples.questions.index("Which name means \"Northern Capital\"?")
    context = examples.contexts[i]
    (text, start), = examples.answers[i]
    assert text == "北京" and context.index("北京") < start == context.index("北京", context.index("北京") + 1)


@pytest.mark.parametrize("name", ["squad_flat.json", "squad_flat.jsonl"])
def test_flat_forms_read_as_the_nested_files(name):
    v1, v2 = read_squad(QA_DATA / "squad_v1.json"), read_squad(QA_DATA / "squad_v2.json")
    flat = read_squad(QA_DATA / name)
    for field in ("ids", "questions", "contexts", "answers", "is_impossible", "titles"):
        assert getattr(flat, field) == getattr(v1, field) + getattr(v2, field), field
    if name.endswith(".jsonl"):
        assert flat.locations[:3] == ["line 1", "line 2", "line 3"]
        assert flat.where(2) == f"{QA_DATA / name}, line 3"
    else:
        assert flat.locations[0] == f"question id {flat.ids[0]}"


def test_flat_record_without_title(tmp_path):
    record = json.loads(_fixture_lines()[0])
    del record["title"]
    examples = read_squad(_write_jsonl(tmp_path, [json.dumps(record)], "untitled.jsonl"))
    assert examples.titles == [None] and examples.ids == [record["id"]]


# -- one error per fault, naming the file and the line or question id ------------------------------
def _v2():
    return _load("squad_v2.json")


def _first_qa(document, q=0):
    return document["data"][0]["paragraphs"][0]["qas"][q]


_NESTED_CASES = {
    "answer_start off by one": (
        lambda d: _first_qa(d, 1)["answers"][0].update(answer_start=_first_qa(d, 1)["answers"][0]["answer_start"] + 1),
        "question id {id1}", "answer 1: answer_start 39 does not point at 'Peking' in the context "
                             "(context[39:45] is 'eking,')"),
    "answer_start past the context": (
        lambda d: _first_qa(d, 1)["answers"][0].update(answer_start=10_000),
        "question id {id1}", "answer_start 10000 does not point at 'Peking'"),
    "answer_start as a string": (
        lambda d: _first_qa(d, 1)["answers"][0].update(answer_start="40"),
        "question id {id1}", "answer 1: answer_start must be an integer, got str"),
    "answer text missing": (
        lambda d: _first_qa(d, 1)["answers"][0].pop("text"),
        "question id {id1}", "answer 1 needs 'text' and 'answer_start' (keys present: 'answer_start')"),
    "missing context": (
        lambda d: d["data"][0]["paragraphs"][0].pop("context"),
        "data[0].paragraphs[0]",
        "the paragraph has no 'context' (keys present: 'qas') (its 7 question(s) are skipped)"),
    "empty context": (
        lambda d: d["data"][0]["paragraphs"][0].update(context=""),
        "data[0].paragraphs[0]", "'context' is empty"),
    "context not a string": (
        lambda d: d["data"][0]["paragraphs"][0].update(context=["Beijing"]),
        "data[0].paragraphs[0]", "'context' must be a string, got list"),
    "missing question": (
        lambda d: _first_qa(d, 1).pop("question"),
        "question id {id1}", "the question has no 'question'"),
    "whitespace-only question": (
        lambda d: _first_qa(d, 1).update(question=" \t "),
        "question id {id1}", "'question' is empty"),
    "question not a string": (
        lambda d: _first_qa(d, 1).update(question=7),
        "question id {id1}", "'question' must be a string, got int"),
    "missing id": (
        lambda d: _first_qa(d, 1).pop("id"),
        "data[0].paragraphs[0].qas[1]", "the question has no 'id'"),
    "id not a string": (
        lambda d: _first_qa(d, 1).update(id=12),
        "data[0].paragraphs[0].qas[1]", "'id' must be a string, got int"),
    "duplicate id": (
        lambda d: d["data"][1]["paragraphs"][0]["qas"][0].update(id=_first_qa(d, 1)["id"]),
        "question id {id1}",
        "duplicate id '{id1}' at data[1].paragraphs[0].qas[0] (first at data[0].paragraphs[0].qas[1])"),
    "answerable without answers": (
        lambda d: _first_qa(d, 1).update(answers=[]),
        "question id {id1}", "no answers, and not marked is_impossible"),
    "impossible with answers": (
        lambda d: _first_qa(d, 5).update(answers=_first_qa(d, 1)["answers"]),
        "question id {id5}", "is_impossible is true but it has 1 answers"),
    "is_impossible not a bool": (
        lambda d: _first_qa(d, 1).update(is_impossible="no"),
        "question id {id1}", "'is_impossible' must be true or false, got str"),
    "answers not a list": (
        lambda d: _first_qa(d, 1).update(answers={"text": "Peking", "answer_start": 40}),
        "question id {id1}", "'answers' must be a list, got dict"),
    "paragraph without qas": (
        lambda d: d["data"][0]["paragraphs"][0].pop("qas"),
        "data[0].paragraphs[0]", "'qas' is missing (its 1 question(s) are skipped)"),
    "paragraphs not a list": (
        lambda d: d["data"][0].update(paragraphs={"context": "Beijing"}),
        "data[0]", "'paragraphs' must be a list, got dict (the whole article is skipped)"),
    "question not an object": (
        lambda d: d["data"][0]["paragraphs"][0]["qas"].insert(0, "Where is Beijing?"),
        "data[0].paragraphs[0].qas[0]", "a question must be a JSON object, got str"),
}


@pytest.mark.parametrize("case", list(_NESTED_CASES))
def test_each_nested_fault_is_one_error_naming_file_and_question(tmp_path, case):
    change, location, reason = _NESTED_CASES[case]
    document = _v2()
    ids = {f"id{q}": _first_qa(document, q)["id"] for q in range(7)}
    change(document)
    path = _write_json(tmp_path, document)
    with pytest.raises(DataError) as err:
        read_squad(path)
    message = str(err.value)
    assert message.startswith(f"{path}, {location.format(**ids)}: "), message
    assert reason.format(**ids) in message


def test_v1_question_without_answers_says_v1_needs_them(tmp_path):
    document = _load("squad_v1.json")
    qa = document["data"][1]["paragraphs"][0]["qas"][2]
    qa["answers"] = []
    with pytest.raises(DataError, match=rf"question id {qa['id']}: no answers \(every SQuAD v1.1 question has "
                                        "at least one\\)"):
        read_squad(_write_json(tmp_path, document))


def test_malformed_json_file_names_line_and_column(tmp_path):
    text = (QA_DATA / "squad_v2.json").read_text(encoding="utf-8").split("\n")
    text[7] = text[7].replace('"context": "', '"context": ', 1)  # the context string loses its opening quote
    path = tmp_path / "broken.json"
    path.write_text("\n".join(text), encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{path}, line 8 column \d+: malformed JSON"):
        read_squad(path)


@pytest.mark.parametrize("document, got", [([{"id": "a"}], "list"),
                                           ({"version": "1.1"}, "an object without a 'data' list")])
def test_not_squad_json(tmp_path, document, got):
    path = _write_json(tmp_path, document)
    with pytest.raises(DataError, match=f"^{path}: expected a SQuAD JSON object with a 'data' list, got {got}"):
        read_squad(path)


def _flat_record(line=0, **changes):
    record = json.loads(_fixture_lines()[line])
    record.update(changes)
    return record


_FLAT_CASES = {
    "answer lists of different lengths": (
        lambda r: r["answers"]["answer_start"].pop(), "answers have 2 texts but 1 answer_start values"),
    "answers not an object": (lambda r: r.update(answers=[]), "'answers' must be a JSON object, got list"),
    "answers without answer_start": (
        lambda r: r["answers"].pop("answer_start"), "'answers' needs the lists 'text' and 'answer_start'"),
    "no answers key": (lambda r: r.pop("answers"), "the record has no 'answers'"),
    "answer_start off": (
        lambda r: r["answers"]["answer_start"].__setitem__(0, 0),
        "answer 1: answer_start 0 does not point at 'Gustave Eiffel' in the context "
        "(context[0:14] is 'The Eiffel Tow')"),
    "missing context": (lambda r: r.pop("context"), "the record has no 'context'"),
    "empty question": (lambda r: r.update(question=""), "'question' is empty"),
    "title not a string": (lambda r: r.update(title=3), "'title' must be a string, got int"),
}


@pytest.mark.parametrize("case", list(_FLAT_CASES))
def test_each_flat_jsonl_fault_names_the_line(tmp_path, case):
    change, reason = _FLAT_CASES[case]
    lines = _fixture_lines()[:4]
    record = json.loads(lines[2])
    record["answers"] = {"text": ["Gustave Eiffel", "the engineer Gustave Eiffel"],
                         "answer_start": [record["context"].index("Gustave Eiffel"),
                                          record["context"].index("the engineer")]}
    change(record)
    lines[2] = json.dumps(record, ensure_ascii=False)
    path = _write_jsonl(tmp_path, lines)
    with pytest.raises(DataError) as err:
        read_squad(path)
    assert str(err.value).startswith(f"{path}, line 3: "), str(err.value)
    assert reason in str(err.value)


def test_flat_json_fault_names_the_id_or_the_record(tmp_path):
    records = [json.loads(line) for line in _fixture_lines()[:3]]
    records[1]["answers"]["text"].append("extra")
    path = _write_json(tmp_path, {"data": records})
    with pytest.raises(DataError, match=rf"^{path}, question id {records[1]['id']}: answers have 4 texts but 3 "):
        read_squad(path)
    del records[1]["id"]
    path = _write_json(tmp_path, {"data": records}, "no_id.json")
    with pytest.raises(DataError, match=rf"^{path}, data\[1\]: the record has no 'id'"):
        read_squad(path)


def test_flat_v1_file_needs_answers_but_unversioned_flat_means_unanswerable(tmp_path):
    records = [json.loads(line) for line in _fixture_lines()[:2]]
    records[1]["answers"] = {"text": [], "answer_start": []}
    examples = read_squad(_write_json(tmp_path, {"data": records}))
    assert examples.is_impossible == [False, True] and examples.answers[1] == []
    with pytest.raises(DataError, match=rf"question id {records[1]['id']}: no answers \(every SQuAD v1.1"):
        read_squad(_write_json(tmp_path, {"version": "1.1", "data": records}, "v1.json"))


@pytest.mark.parametrize("line, reason", [
    ('{"id": "x", "question": "Where?", ',
     r"malformed JSON \(Expecting property name enclosed in double quotes at column 35\)"),
    ('["id", "question"]', "the record must be a JSON object, got list"),
])
def test_malformed_jsonl_line(tmp_path, line, reason):
    lines = _fixture_lines()[:3]
    lines.insert(1, line)
    path = _write_jsonl(tmp_path, lines)
    with pytest.raises(DataError, match=rf"^{path}, line 2: {reason}"):
        read_squad(path)


def test_duplicate_id_in_jsonl_names_both_lines(tmp_path):
    lines = _fixture_lines()[:3]
    lines.append(lines[0])
    path = _write_jsonl(tmp_path, lines)
    first_id = json.loads(lines[0])["id"]
    with pytest.raises(DataError, match=rf"^{path}, line 4: duplicate id '{first_id}' \(first at line 1\)$"):
        read_squad(path)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes((QA_DATA / "squad_flat.jsonl").read_bytes().split(b"\n")[0] + b"\n" +
                     "Zürich".encode("latin-1") + b"\n")
    with pytest.raises(DataError, match=rf"^{path}, line 2: not valid UTF-8"):
        read_squad(path)


# -- skipping --------------------------------------------------------------------------------------
def test_skip_drops_bad_questions_and_counts_them(tmp_path, caplog):
    document = _v2()
    good = read_squad(QA_DATA / "squad_v2.json")
    bad_id = _first_qa(document, 1)["id"]
    _first_qa(document, 1)["answers"][0]["answer_start"] += 1  # one bad question
    document["data"][1]["paragraphs"].append({"qas": [{"id": "p1", "question": "Q?"}, {"id": "p2", "question": "Q?"}]})
    path = _write_json(tmp_path, document)
    with caplog.at_level(logging.WARNING, logger="tfft"):
        examples = read_squad(path, on_bad_row="skip")
    assert examples.ids == [i for i in good.ids if i != bad_id]
    assert examples.skipped.count == 3  # the question, and both questions of the paragraph without context
    assert examples.skipped.reasons[0].startswith(f"question id {bad_id}: answer 1: answer_start")
    assert examples.skipped.reasons[1].startswith("data[1].paragraphs[1]: the paragraph has no 'context'")
    assert f"{path}: 3 bad rows skipped" in caplog.text


def test_skip_in_jsonl(tmp_path):
    lines = _fixture_lines()[:5]
    lines[1] = lines[1][:-3]
    lines[3] = json.dumps(_flat_record(3, question="  "))
    examples = read_squad(_write_jsonl(tmp_path, lines), on_bad_row="skip")
    assert examples.locations == ["line 1", "line 3", "line 5"]
    assert examples.skipped.count == 2
    assert [r.split(":")[0] for r in examples.skipped.reasons] == ["line 2", "line 4"]


def test_nothing_left_after_skipping(tmp_path):
    path = _write_jsonl(tmp_path, ['{"id": "a"}', "not json"])
    with pytest.raises(DataError, match=rf"^{path}: no questions \(2 bad rows skipped"):
        read_squad(path, on_bad_row="skip")


def test_file_errors(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        read_squad(tmp_path / "missing.json")
    with pytest.raises(DataError, match=r"unknown question answering data suffix '\.csv'; expected \.json or \.jsonl"):
        read_squad(tmp_path / "train.csv")
    with pytest.raises(DataError, match="on_bad_row must be one of"):
        read_squad(QA_DATA / "squad_v1.json", on_bad_row="ignore")


def test_examples_fields_must_agree():
    with pytest.raises(ValueError, match="QAExamples fields differ in length"):
        QAExamples(ids=["a"], questions=["Q?"], contexts=[], answers=[[]], is_impossible=[True], titles=[None],
                   locations=["x"])
