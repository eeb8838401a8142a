import json
import logging

import pytest
import tensorflow as tf

from tests.data.conftest import DATA
from tfft.data import read_examples
from tfft.errors import DataError, TfftError


def _jsonl_rows(name):
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


def _bytes(*values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))


def write_tfrecord(path, rows):
    """Rows (dicts of str / int / float / list) as tf.train.Examples, as a user's converter would write them."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in rows:
            feature = {}
            for key, value in row.items():
                values = value if isinstance(value, list) else [value]
                if all(isinstance(v, str) for v in values):
                    feature[key] = _bytes(*values)
                elif all(isinstance(v, int) for v in values):
                    feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
                else:
                    feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


# -- every format reads the same rows -------------------------------------------------------------
@pytest.mark.parametrize("name", ["reviews.jsonl", "reviews.csv", "reviews.tsv"])
def test_each_format_reads_the_same_rows(name):
    expected = _jsonl_rows("reviews.jsonl")
    examples = read_examples(DATA / name)
    assert len(examples) == 24
    assert examples.texts == [r["text"] for r in expected]
    assert examples.labels == [r["label"] for r in expected]
    assert examples.text_pairs is None
    assert examples.locations == list(range(1, 25)) if name.endswith(".jsonl") else list(range(2, 26))
    assert examples.skipped.count == 0
    assert any('9"' in t for t in examples.texts)  # the quoted CSV cell and the unquoted TSV one agree


def test_tfrecord_round_trip(tmp_path):
    rows = _jsonl_rows("reviews.jsonl")
    path = tmp_path / "reviews.tfrecord"
    write_tfrecord(path, rows)
    examples = read_examples(path)
    assert examples.texts == [r["text"] for r in rows]
    assert examples.labels == [r["label"] for r in rows]
    assert examples.where(0) == f"{path}, record 1"


def test_tfrecord_int_float_and_list_labels(tmp_path):
    path = tmp_path / "mixed.tfrecord"
    write_tfrecord(path, [{"text": "a", "label": 3}, {"text": "b", "label": 0.5}, {"text": "c", "label": ["x", "y"]}])
    assert read_examples(path).labels == [3, 0.5, ["x", "y"]]


def test_sentence_pairs():
    rows = _jsonl_rows("review_pairs.jsonl")
    examples = read_examples(DATA / "review_pairs.jsonl", text_pair_column="text_pair")
    assert examples.text_pairs == [r["text_pair"] for r in rows]
    assert examples.texts == [r["text"] for r in rows]


def test_file_without_labels_for_prediction():
    examples = read_examples(DATA / "reviews.csv", label_column=None)
    assert examples.labels is None and len(examples) == 24


def test_numeric_csv_labels_become_numbers(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("text,label\nfirst,1\nsecond,0\nthird,0.25\nfourth,-2\n", encoding="utf-8")
    assert read_examples(path).labels == [1, 0, 0.25, -2]


def test_explicit_format_overrides_the_suffix(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_bytes((DATA / "reviews.tsv").read_bytes())
    assert len(read_examples(path, format="tsv")) == 24


# -- bad input: one clear DataError naming file, line and column ----------------------------------
@pytest.mark.parametrize("name, line, words", [
    ("bad_malformed.jsonl", 3, ["malformed JSON"]),
    ("bad_not_object.jsonl", 2, ["JSON object", "list"]),
    ("bad_missing_column.jsonl", 4, ["'text'", "missing", "'review'"]),
    ("bad_empty_text.csv", 4, ["'text'", "empty"]),
    ("bad_fields.tsv", 3, ["malformed", "expected 2 fields", "got 3"]),
])
def test_bad_row_names_file_line_and_column(name, line, words):
    with pytest.raises(DataError) as info:
        read_examples(DATA / name)
    message = str(info.value)
    assert f"{DATA / name}, line {line}:" in message
    for word in words:
        assert word in message
    assert isinstance(info.value, TfftError)


def test_header_without_the_text_column_fails_even_when_skipping():
    with pytest.raises(DataError, match=r"bad_header\.csv: line 1: header has no column 'text'.*'sentence'"):
        read_examples(DATA / "bad_header.csv", on_bad_row="skip")


def test_non_string_text_and_null_label_are_bad_rows(tmp_path):
    path = tmp_path / "types.jsonl"
    path.write_text('{"text": 5, "label": "a"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"types\.jsonl, line 1: column 'text' must be a string, got int"):
        read_examples(path)
    path.write_text('{"text": "fine", "label": "a"}\n\n{"text": "ok", "label": null}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"types\.jsonl, line 3: column 'label' is null"):
        read_examples(path)


@pytest.mark.parametrize("name, kept", [
    ("bad_malformed.jsonl", 4), ("bad_not_object.jsonl", 3), ("bad_missing_column.jsonl", 4),
    ("bad_empty_text.csv", 3), ("bad_fields.tsv", 2),
])
def test_skip_drops_and_counts_bad_rows(name, kept, caplog):
    with caplog.at_level(logging.WARNING, logger="tfft"):
        examples = read_examples(DATA / name, on_bad_row="skip")
    assert len(examples) == kept
    assert examples.skipped.count == 1
    assert examples.skipped.reasons[0].startswith("line ")
    assert "1 bad row skipped" in caplog.text and name in caplog.text
    assert len(examples.locations) == kept and examples.locations == sorted(examples.locations)


def test_skipping_every_row_is_an_error(tmp_path):
    path = tmp_path / "all_bad.jsonl"
    path.write_text('{"text": ""}\n{"text": " "}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"all_bad\.jsonl: no examples \(2 bad rows skipped"):
        read_examples(path, on_bad_row="skip", label_column=None)


def test_csv_quoted_cells_may_span_lines_and_errors_keep_the_right_line(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text('text,label\n"two\nlines, one cell",positive\n"abc"def,negative\nok,positive\n', encoding="utf-8")
    examples = read_examples(path, on_bad_row="skip")
    assert examples.texts == ["two\nlines, one cell", "ok"] and examples.locations == [2, 5]
    assert examples.skipped.reasons == ["line 4: malformed line (',' expected after '\"')"]
    with pytest.raises(DataError, match=r"quoted\.csv, line 4: malformed line"):
        read_examples(path)


def test_unicode_line_separators_inside_texts_do_not_split_rows(tmp_path):
    text = "one\u2028two\x85three"
    (tmp_path / "u.jsonl").write_text(json.dumps({"text": text, "label": "a"}, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    (tmp_path / "u.csv").write_text(f"text,label\n{text},a\nnext,b\n", encoding="utf-8")
    assert read_examples(tmp_path / "u.jsonl").texts == [text]
    examples = read_examples(tmp_path / "u.csv")
    assert examples.texts == [text, "next"] and examples.locations == [2, 3]


def test_tfrecord_bad_records_name_the_record(tmp_path):
    path = tmp_path / "bad.tfrecord"
    write_tfrecord(path, [{"text": "fine", "label": "a"}, {"review": "no text", "label": "b"}])
    with pytest.raises(DataError, match=r"bad\.tfrecord, record 2: column 'text' is missing"):
        read_examples(path)
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(b"\xff\xfe not a protobuf")
    with pytest.raises(DataError, match=r"bad\.tfrecord, record 1: malformed record"):
        read_examples(path)


def test_truncated_tfrecord_is_reported(tmp_path):
    path = tmp_path / "cut.tfrecord"
    write_tfrecord(path, [{"text": "first", "label": "a"}, {"text": "second", "label": "b"}])
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"cut\.tfrecord, record 2: unreadable TFRecord"):
        read_examples(path)


def test_missing_file_unknown_suffix_and_bad_encoding(tmp_path):
    with pytest.raises(DataError, match="data file not found: .*nope.jsonl"):
        read_examples(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match=r"unknown data suffix '\.parquet'"):
        read_examples(tmp_path / "data.parquet")
    with pytest.raises(DataError, match="on_bad_row must be one of"):
        read_examples(DATA / "reviews.csv", on_bad_row="ignore")
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\nok,a\ncaf\xe9,b\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv, line 3: not valid UTF-8"):
        read_examples(path)
