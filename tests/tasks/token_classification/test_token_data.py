"""read_token_examples: each format on tiny fixtures, the bundled WNUT-16 files, and every bad input."""

import json
import logging
from pathlib import Path

import pytest

from tfft.errors import DataError
from tfft.tasks.token_classification.data import read_token_examples, split_words
from tfft.tasks.token_classification.schemes import entity_types

FIXTURES = Path(__file__).parent / "fixtures"
WNUT = Path(__file__).parents[3] / "data" / "ner-wnut16"


def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def _spans(*records):
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"


# -- CoNLL -----------------------------------------------------------------------------------------
def test_conll_with_tabs_docstart_and_no_final_newline():
    examples = read_token_examples(FIXTURES / "tweets.conll")
    assert len(examples) == 3
    assert examples.words == [
        ["Heading", "to", "New", "York", "with", "@maria_g", "!"],
        ["Zoë", "Saldaña", "on", "#SNL", "tonight"],
        ["watching", "Game", "of", "Thrones"],
    ]
    assert examples.tags[0] == ["O", "O", "B-geo-loc", "I-geo-loc", "O", "O", "O"]
    assert examples.tags[2] == ["O", "I-tvshow", "I-tvshow", "I-tvshow"]  # ill-formed IOB2 is kept as it is
    assert examples.lines == [3, 11, 18]
    assert examples.where(1) == f"{FIXTURES / 'tweets.conll'}, line 11"
    assert examples.texts is None and examples.word_offsets is None
    assert examples.skipped.count == 0 and examples.scheme == "IOB2"


def test_conll2003_layout_with_spaces_and_a_chosen_tag_column():
    path = FIXTURES / "conll2003.txt"
    ner = read_token_examples(path)  # the last column
    assert ner.words[0] == ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]
    assert ner.tags[0] == ["I-ORG", "O", "I-MISC", "O", "O", "O", "I-MISC", "O", "O"]
    assert ner.words[2] == ["BRUSSELS", "1996-08-22"] and ner.lines == [3, 13, 18]
    chunks = read_token_examples(path, tag_column=2)
    assert chunks.tags[0] == ["I-NP", "I-VP", "I-NP", "I-NP", "I-VP", "I-VP", "I-NP", "I-NP", "O"]
    assert chunks.words == ner.words
    by_name = read_token_examples(path, tag_column=3, word_column=0, format="conll")
    assert by_name.tags == ner.tags
    pos_as_words = read_token_examples(path, word_column=1)
    assert pos_as_words.words[0][:3] == ["NNP", "VBZ", "JJ"] and pos_as_words.tags == ner.tags
    with pytest.raises(DataError, match=r"conll2003\.txt, line 3: tag \(column 1\): malformed tag 'NNP'"):
        read_token_examples(path, tag_column=1)  # the POS column is no tag column


def test_words_only_for_prediction():
    examples = read_token_examples(FIXTURES / "words.conll", has_tags=False)
    assert examples.words == [["Heading", "to", "New", "York"], ["Zoë", "Saldaña"]] and examples.tags is None
    assert read_token_examples(FIXTURES / "tweets.conll", has_tags=False).words[1][0] == "Zoë"
    with pytest.raises(DataError, match=r"words\.conll, line 1: too few columns: need a word \(word_column=0\) "
                                        r"and a tag \(tag_column=-1\), got 1 column"):
        read_token_examples(FIXTURES / "words.conll")


def test_conll_crlf_bom_and_suffixes(tmp_path):
    content = "\ufeffa\tB-PER\r\nb\tI-PER\r\n\r\nc\tO\r\n"
    for suffix in (".conll", ".txt", ".tsv", ".iob", ".bio", ".CONLL"):
        examples = read_token_examples(_write(tmp_path, "f" + suffix, content))
        assert examples.words == [["a", "b"], ["c"]] and examples.tags == [["B-PER", "I-PER"], ["O"]]
        assert examples.lines == [1, 4]


def test_conll_under_other_schemes(tmp_path):
    iobes = _write(tmp_path, "iobes.conll", "a\tB-PER\nb\tE-PER\nc\tS-LOC\n")
    assert read_token_examples(iobes, scheme="BIOES").tags == [["B-PER", "E-PER", "S-LOC"]]
    io = _write(tmp_path, "io.conll", "a\tI-PER\nb\tO\n")
    assert read_token_examples(io, scheme="IO").tags == [["I-PER", "O"]]


@pytest.mark.parametrize("content, scheme, line, reason", [
    ("a\tO\nb\n", "IOB2", 2, "too few columns"),
    ("a\tO\n\n\tO\n", "IOB2", 3, r"empty word \(column 0\)"),
    ("a\tO\nb\t\n", "IOB2", 2, r"tag \(column 1\) is empty"),
    ("a\tO\nb\tE-PER\n", "IOB2", 2, "tag 'E-PER' is not an IOB2 tag"),
    ("a\tO\n\nb\tB-PER\n", "IO", 3, "tag 'B-PER' is not an IO tag"),
    ("a\tBPER\n", "IOB2", 1, "malformed tag 'BPER'"),
    ("a   B-PER\nb  I-PER x\n", "IOB2", 2, "malformed tag 'x'"),
])
def test_conll_bad_lines_name_file_and_line(tmp_path, content, scheme, line, reason):
    path = _write(tmp_path, "bad.conll", content)
    with pytest.raises(DataError, match=rf"bad\.conll, line {line}: .*{reason}"):
        read_token_examples(path, scheme=scheme)


def test_invalid_utf8_names_the_line(tmp_path):
    path = _write(tmp_path, "latin1.conll", "a\tO\n\nb\tO\n".encode() + "café\tO\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.conll, line 4: not valid UTF-8"):
        read_token_examples(path)


def test_skipping_drops_the_whole_sentence_and_counts_it_once(tmp_path, caplog):
    content = "a\tO\nb\tB-PER\n\nc\tO\nd\tE-PER\ne\tBAD\n\nf\tB-LOC\n\n\tO\n\ng\tO\n"
    path = _write(tmp_path, "some_bad.conll", content)
    with caplog.at_level(logging.WARNING, logger="tfft"):
        examples = read_token_examples(path, on_bad_row="skip")
    assert examples.words == [["a", "b"], ["f"], ["g"]]
    assert examples.tags == [["O", "B-PER"], ["B-LOC"], ["O"]]
    assert examples.lines == [1, 8, 12]
    assert examples.skipped.count == 2  # one per dropped sentence, not per bad line
    assert examples.skipped.reasons[0].startswith("line 5: tag (column 1): tag 'E-PER' is not an IOB2 tag")
    assert examples.skipped.reasons[1].startswith("line 10: empty word")
    assert "some_bad.conll: 2 bad rows skipped" in caplog.text


def test_all_sentences_bad_or_empty_file(tmp_path):
    with pytest.raises(DataError, match=r"all_bad\.conll: no sentences \(2 bad rows skipped"):
        read_token_examples(_write(tmp_path, "all_bad.conll", "a\tX\n\nb\n"), on_bad_row="skip")
    with pytest.raises(DataError, match=r"empty\.conll: no sentences$"):
        read_token_examples(_write(tmp_path, "empty.conll", "-DOCSTART-\tO\n\n\n"))


# -- JSON Lines of tokens --------------------------------------------------------------------------
def test_jsonl_tokens_with_either_key_names():
    examples = read_token_examples(FIXTURES / "tokens.jsonl")
    assert examples.words == [["Heading", "to", "New", "York"], ["Zoë", "Saldaña", "on", "#SNL"],
                              ["東京", "タワー", "に", "行く"]]
    assert examples.tags == [["O", "O", "B-geo-loc", "I-geo-loc"], ["B-person", "I-person", "O", "B-tvshow"],
                             ["B-facility", "I-facility", "O", "O"]]
    assert examples.lines == [1, 2, 4] and examples.texts is None and examples.word_offsets is None
    assert read_token_examples(FIXTURES / "tokens.jsonl", has_tags=False).tags is None


def test_jsonl_integer_tags_need_tag_names():
    names = ["O", "B-geo-loc", "I-geo-loc"]
    examples = read_token_examples(FIXTURES / "int_tags.jsonl", tag_names=names)
    assert examples.tags == [["O", "O", "B-geo-loc", "I-geo-loc"], ["B-geo-loc", "O"]]
    with pytest.raises(DataError, match=r"int_tags\.jsonl, line 1: ner_tags\[0\] is the integer 0; pass tag_names"):
        read_token_examples(FIXTURES / "int_tags.jsonl")
    with pytest.raises(DataError, match=r"int_tags\.jsonl, line 1: ner_tags\[3\] is 2, outside 0\.\.1"):
        read_token_examples(FIXTURES / "int_tags.jsonl", tag_names=names[:2])
    with pytest.raises(DataError, match=r"int_tags\.jsonl: tag_names\[1\]: tag 'E-x' is not an IOB2 tag"):
        read_token_examples(FIXTURES / "int_tags.jsonl", tag_names=["O", "E-x"])


@pytest.mark.parametrize("line, reason", [
    ('{"tokens": ["a", "b"], "tags": ["O"]}', "1 tags for 2 tokens"),
    ('{"tokens": ["a", 7], "tags": ["O", "O"]}', r"tokens\[1\] must be a string, got int 7"),
    ('{"tokens": ["a", " "], "tags": ["O", "O"]}', r"tokens\[1\] is empty"),
    ('{"tokens": [], "tags": []}', "'tokens' is empty"),
    ('{"tokens": "a b", "tags": ["O", "O"]}', "'tokens' must be a list of strings, got str"),
    ('{"tokens": ["a"], "tags": "O"}', "'tags' must be a list, got str"),
    ('{"tokens": ["a"], "tags": [true]}', r"tags\[0\]: tag True is a bool, not a string"),
    ('{"tokens": ["a"], "tags": ["S-PER"]}', r"tags\[0\]: tag 'S-PER' is not an IOB2 tag"),
    ('{"tokens": ["a"]}', "no 'tags' \\(or 'ner_tags'\\) key; read files without tags with has_tags=False"),
    ('{"sentence": ["a"], "tags": ["O"]}', r"no 'tokens' \(or 'words'\) key \(keys present: 'sentence', 'tags'\)"),
    ('{"tokens": ["a"], "tags": ["O"]', "malformed JSON"),
    ('[["a"], ["O"]]', "expected a JSON object, got list"),
])
def test_jsonl_bad_records_name_file_and_line(tmp_path, line, reason):
    path = _write(tmp_path, "bad.jsonl", '{"tokens": ["ok"], "tags": ["O"]}\n\n' + line + "\n")
    with pytest.raises(DataError, match=rf"bad\.jsonl, line 3: {reason}"):
        read_token_examples(path)


def test_jsonl_skipping_counts_each_record(tmp_path):
    path = _write(tmp_path, "skip.jsonl", '{"tokens": ["a"], "tags": ["O"]}\nnot json\n[1]\n'
                                          '{"tokens": ["b"], "tags": ["B-X"]}\n')
    examples = read_token_examples(path, on_bad_row="skip")
    assert examples.words == [["a"], ["b"]] and examples.lines == [1, 4] and examples.skipped.count == 2


# -- JSON Lines of character spans -----------------------------------------------------------------
def test_spans_split_at_entity_edges_with_unicode_offsets():
    path = FIXTURES / "spans.jsonl"
    examples = read_token_examples(path)
    assert len(examples) == 5 and examples.lines == [1, 2, 3, 5, 6]
    assert examples.words[0] == ["Heading", "to", "New", "York", "with", "@", "maria", "_", "g", "!"]
    assert examples.tags[0] == ["O", "O", "B-geo-loc", "I-geo-loc", "O", "O", "O", "O", "O", "O"]
    # Emoji are symbols: each regional indicator is a word; offsets count code points.
    assert examples.words[1] == ["🇧", "🇷", "Zoë", "Saldaña", "loves", "São", "Paulo", "and", "her", "iPhone",
                                 "12", "."]
    assert examples.tags[1] == ["O", "O", "B-person", "I-person", "O", "B-geo-loc", "I-geo-loc", "O", "O",
                                "B-product", "O", "O"]
    assert examples.tags[2] == ["O"] * 4
    assert examples.words[3] == ["東京タワー", "に行く"] and examples.tags[3] == ["B-facility", "O"]
    assert examples.words[4] == ["Paris", "London"] and examples.tags[4] == ["B-geo-loc", "B-geo-loc"]
    for text, words, offsets in zip(examples.texts, examples.words, examples.word_offsets):
        assert [text[start:end] for start, end in offsets] == words
    assert examples.word_offsets[1][2:4] == [(3, 6), (7, 14)]
    assert examples.texts[0] == "Heading to New York with @maria_g!"


def test_spans_in_other_schemes():
    iobes = read_token_examples(FIXTURES / "spans.jsonl", scheme="IOBES")
    assert iobes.tags[1][:7] == ["O", "O", "B-person", "E-person", "O", "B-geo-loc", "E-geo-loc"]
    assert iobes.tags[3] == ["S-facility", "O"] and iobes.scheme == "IOBES"
    io = read_token_examples(FIXTURES / "spans.jsonl", scheme="IO")
    assert io.tags[4] == ["I-geo-loc", "I-geo-loc"]  # IO cannot tell adjacent entities apart


def test_spans_without_entities_for_prediction(tmp_path):
    path = _write(tmp_path, "texts.jsonl", _spans({"text": "New York, again"}, {"text": "ParisLondon"}))
    examples = read_token_examples(path, has_tags=False)
    assert examples.tags is None and examples.words == [["New", "York", ",", "again"], ["ParisLondon"]]
    assert examples.word_offsets[0] == [(0, 3), (4, 8), (8, 9), (10, 15)]


def test_split_words():
    assert split_words("  a+b  c ") == (["a", "+", "b", "c"], [(2, 3), (3, 4), (4, 5), (7, 8)])
    assert split_words("abcdef", [2, 4]) == (["ab", "cd", "ef"], [(0, 2), (2, 4), (4, 6)])
    assert split_words("naïve\u00a0café") == (["naïve", "café"], [(0, 5), (6, 10)])  # NBSP is a space
    assert split_words("e\u0301t\u00e9") == (["e\u0301t\u00e9"], [(0, 4)])  # a combining mark stays in its word
    assert split_words("") == ([], [])


def _entity(start, end, label="PER"):
    return {"start": start, "end": end, "label": label}


@pytest.mark.parametrize("record, reason", [
    ({"text": "Ann Lee", "entities": [{"start": "0", "end": 3, "label": "PER"}]},
     r"entities\[0\]: start must be an integer, got '0'"),
    ({"text": "Ann Lee", "entities": [{"start": 0, "end": 3.0, "label": "PER"}]},
     r"entities\[0\]: end must be an integer, got 3\.0"),
    ({"text": "Ann Lee", "entities": [{"start": 0, "label": "PER"}]},
     r"entities\[0\]: end must be an integer, got None"),
    ({"text": "Ann Lee", "entities": [_entity(3, 3)]}, r"entities\[0\]: start 3 is not before end 3"),
    ({"text": "Ann Lee", "entities": [_entity(4, 2)]}, r"entities\[0\]: start 4 is not before end 2"),
    ({"text": "Ann Lee", "entities": [_entity(4, 8)]},
     r"entities\[0\]: end 8 is past the end of the text \(7 characters\)"),
    ({"text": "Ann Lee", "entities": [_entity(-1, 3)]}, r"entities\[0\]: negative start -1"),
    ({"text": "Ann Lee", "entities": [_entity(0, 3), _entity(2, 7)]},
     r"entities\[1\] \[2, 7\) 'n Lee' overlaps entities\[0\] \[0, 3\) 'Ann'"),
    ({"text": "Ann Lee", "entities": [_entity(4, 7), _entity(4, 7, "LOC")]},
     r"entities\[0\] \[4, 7\) 'Lee' overlaps entities\[1\] \[4, 7\) 'Lee'"),
    ({"text": "Ann  Lee", "entities": [_entity(3, 5)]}, r"entities\[0\] \[3, 5\) covers only whitespace"),
    ({"text": "Ann Lee", "entities": [_entity(0, 3, "")]}, r"entities\[0\]: label must be a non-empty string"),
    ({"text": "Ann Lee", "entities": [_entity(0, 3, None)]},
     r"entities\[0\]: label must be a non-empty string, got None"),
    ({"text": "Ann Lee", "entities": [_entity(0, 3, "a person")]},
     r"entities\[0\]: label 'a person': malformed tag 'B-a person'.*holds whitespace"),
    ({"text": "Ann Lee", "entities": ["0:3"]}, r"entities\[0\] must be an object with start, end and label"),
    ({"text": "Ann Lee", "entities": {"start": 0}}, "'entities' must be a list, got dict"),
    ({"text": "Ann Lee"}, r"no 'entities' key \(\[\] for a text without entities"),
    ({"entities": []}, "no 'text' key"),
    ({"text": 5, "entities": []}, "'text' must be a string, got int"),
    ({"text": "  ", "entities": []}, "'text' has no words"),
])
def test_span_errors_name_file_and_line(tmp_path, record, reason):
    path = _write(tmp_path, "bad_spans.jsonl", _spans({"text": "fine", "entities": []}, record))
    with pytest.raises(DataError, match=rf"bad_spans\.jsonl, line 2: {reason}"):
        read_token_examples(path)


def test_spans_skipping(tmp_path):
    path = _write(tmp_path, "spans.jsonl", _spans({"text": "Ann Lee", "entities": [_entity(0, 3)]},
                                                  {"text": "Ann Lee", "entities": [_entity(0, 9)]},
                                                  {"text": "Bo", "entities": [_entity(0, 2, "LOC")]}))
    examples = read_token_examples(path, on_bad_row="skip")
    assert examples.texts == ["Ann Lee", "Bo"] and examples.tags == [["B-PER", "O"], ["B-LOC"]]
    assert len(examples.word_offsets) == 2 and examples.lines == [1, 3] and examples.skipped.count == 1


# -- the file as a whole ---------------------------------------------------------------------------
def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match=r"data file not found: .*nope\.conll"):
        read_token_examples(tmp_path / "nope.conll")
    with pytest.raises(DataError, match=r"unknown token-classification data suffix '\.csv'"):
        read_token_examples(tmp_path / "x.csv")
    with pytest.raises(DataError, match=r"unknown token-classification data format 'xml'"):
        read_token_examples(FIXTURES / "tweets.conll", format="xml")
    with pytest.raises(DataError, match="on_bad_row must be one of"):
        read_token_examples(FIXTURES / "tweets.conll", on_bad_row="ignore")
    with pytest.raises(DataError, match=r"tweets\.conll: word_column and tag_column are both 1"):
        read_token_examples(FIXTURES / "tweets.conll", word_column=1, tag_column=1)
    with pytest.raises(DataError, match=r"tweets\.conll: unknown tag scheme 'BILOU'"):
        read_token_examples(FIXTURES / "tweets.conll", scheme="BILOU")


# -- the bundled WNUT-16 data ----------------------------------------------------------------------
@pytest.mark.parametrize("split, sentences, words", [("train", 1869, 36494), ("dev", 248, 4712), ("test", 277, 5263)])
def test_bundled_wnut16(split, sentences, words):
    examples = read_token_examples(WNUT / f"{split}.conll")
    assert len(examples) == sentences and sum(map(len, examples.words)) == words
    assert entity_types(examples.tags) == ["company", "facility", "geo-loc", "movie", "musicartist", "other",
                                           "person", "product", "sportsteam", "tvshow"]
    assert all(len(w) == len(t) for w, t in zip(examples.words, examples.tags))
