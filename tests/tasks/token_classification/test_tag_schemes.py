"""Tag schemes: parsing and checking tags, converting between schemes, reading entities by hand."""

import random

import pytest

from tfft.tasks.token_classification.schemes import (
    check_tag,
    convert,
    entity_types,
    extract_entities,
    parse_tag,
    scheme_name,
    scheme_tags,
)


def test_parse_tag():
    assert parse_tag("O") == ("O", None)
    assert parse_tag("B-PER") == ("B", "PER")
    assert parse_tag("I-geo-loc") == ("I", "geo-loc")  # the type is everything after the first "-"
    assert parse_tag("S-東京") == ("S", "東京")


@pytest.mark.parametrize("tag, reason", [
    ("BPER", "malformed tag 'BPER'"),
    ("PER", "malformed tag 'PER'"),
    ("B-", "no entity type after B-"),
    ("O-PER", "O takes no entity type"),
    ("X-PER", "unknown prefix 'X'"),
    ("b-PER", "unknown prefix 'b'"),
    ("B-new york", "holds whitespace"),
    ("B--PER", "starts or ends with '-'"),
    ("", "empty tag"),
    (" ", "empty tag"),
    (3, "is a int, not a string"),
    (None, "not a string"),
])
def test_malformed_tags_say_why(tag, reason):
    with pytest.raises(ValueError, match=reason):
        parse_tag(tag)
    with pytest.raises(ValueError, match=reason):
        check_tag(tag, "IOBES")


@pytest.mark.parametrize("tag, scheme", [("E-PER", "IOB2"), ("S-PER", "BIO"), ("B-PER", "IO"), ("E-PER", "IO")])
def test_tags_outside_the_scheme(tag, scheme):
    name = scheme_name(scheme)
    with pytest.raises(ValueError, match=rf"tag '{tag}' is not an {name} tag: {name} has the prefixes"):
        check_tag(tag, scheme)


@pytest.mark.parametrize("tag, scheme", [("O", "IO"), ("I-PER", "IO"), ("B-PER", "IOB2"), ("I-PER", "IOB2"),
                                         ("E-PER", "IOBES"), ("S-PER", "BIOES"), ("B-PER", "IOBES")])
def test_tags_inside_the_scheme(tag, scheme):
    assert check_tag(tag, scheme) == parse_tag(tag)


def test_scheme_names_and_aliases():
    assert [scheme_name(s) for s in ("IOB2", "BIO", "bio", "iobes", "BIOES", "io")] == [
        "IOB2", "IOB2", "IOB2", "IOBES", "IOBES", "IO"]
    with pytest.raises(ValueError, match="unknown tag scheme 'IOB1'; expected IOB2"):
        scheme_name("IOB1")


def test_scheme_tags_and_entity_types():
    assert scheme_tags(["PER", "LOC", "PER"], "IOBES") == [
        "O", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "B-PER", "I-PER", "E-PER", "S-PER"]
    assert scheme_tags([], "IO") == ["O"]
    assert entity_types(["B-PER", "I-PER", "O", "B-geo-loc"]) == ["PER", "geo-loc"]
    assert entity_types([["B-PER"], ["O"], ["S-LOC", "E-LOC"]]) == ["LOC", "PER"]
    assert entity_types([]) == []
    with pytest.raises(ValueError, match="malformed tag 'BPER'"):
        entity_types(["BPER"])


# -- conversion ------------------------------------------------------------------------------------
@pytest.mark.parametrize("tags, from_scheme, to_scheme, expected", [
    (["B-PER", "I-PER", "O", "B-LOC"], "IOB2", "IOBES", ["B-PER", "E-PER", "O", "S-LOC"]),
    (["B-PER", "I-PER", "I-PER", "B-PER", "B-LOC", "I-LOC"], "IOB2", "IOBES",
     ["B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "E-LOC"]),
    (["B-PER", "I-PER", "E-PER", "O", "S-LOC"], "IOBES", "IOB2", ["B-PER", "I-PER", "I-PER", "O", "B-LOC"]),
    (["S-PER", "S-PER"], "IOBES", "IOB2", ["B-PER", "B-PER"]),
    (["I-LOC", "I-LOC", "O", "I-PER", "I-LOC"], "IO", "IOB2", ["B-LOC", "I-LOC", "O", "B-PER", "B-LOC"]),
    (["I-LOC", "I-LOC", "O", "I-PER"], "IO", "IOBES", ["B-LOC", "E-LOC", "O", "S-PER"]),
    (["B-PER", "B-PER", "O"], "IOB2", "IO", ["I-PER", "I-PER", "O"]),  # lossy: the two merge
    # Ill-formed input is read as seqeval's default mode reads it, and written well-formed.
    (["O", "I-PER", "I-PER", "B-PER"], "IOB2", "IOBES", ["O", "B-PER", "E-PER", "S-PER"]),
    (["B-PER", "I-LOC"], "IOB2", "IOB2", ["B-PER", "I-LOC"]),  # same scheme: unchanged
    (["B-PER", "I-LOC"], "BIO", "IOB2", ["B-PER", "I-LOC"]),
    (["B-PER", "I-LOC"], "IOB2", "IOBES", ["S-PER", "S-LOC"]),
    (["B-PER", "O"], "IOBES", "IOB2", ["B-PER", "O"]),
    ([], "IOB2", "IOBES", []),
])
def test_convert(tags, from_scheme, to_scheme, expected):
    assert convert(tags, from_scheme, to_scheme) == expected


def test_convert_checks_the_source_scheme():
    with pytest.raises(ValueError, match="token 1: tag 'E-PER' is not an IOB2 tag"):
        convert(["B-PER", "E-PER"], "IOB2", "IOBES")
    with pytest.raises(ValueError, match="one sentence"):
        convert([["B-PER"]], "IOB2", "IOBES")


def _random_tags(rng, scheme, length):
    prefixes = {"IOB2": "BI", "IOBES": "BIES", "IO": "I"}[scheme]
    return [rng.choice(["O", f"{rng.choice(prefixes)}-{rng.choice(['PER', 'geo-loc'])}"]) for _ in range(length)]


@pytest.mark.parametrize("source, target", [("IOB2", "IOBES"), ("IOBES", "IOB2"), ("IO", "IOB2"), ("IO", "IOBES"),
                                            ("IOB2", "IOB2")])
def test_convert_keeps_the_entities_and_writes_them_well_formed(source, target):
    rng = random.Random(7)
    for _ in range(500):
        tags = _random_tags(rng, source, rng.randrange(0, 9))
        converted = convert(tags, source, target)
        assert len(converted) == len(tags)
        entities = extract_entities(tags, scheme=source)
        assert extract_entities(converted, scheme=target) == entities
        if source != target:  # written well-formed: strict mode finds every entity
            assert extract_entities(converted, mode="strict", scheme=target) == entities


# -- entities by hand (seqeval's behaviour; cross-checked against seqeval in test_seqeval_parity.py) -----
@pytest.mark.parametrize("tags, scheme, default, strict", [
    (["B-PER", "I-PER", "O", "B-LOC"], "IOB2", [("PER", 0, 1), ("LOC", 3, 3)], [("PER", 0, 1), ("LOC", 3, 3)]),
    (["I-PER", "I-PER", "O", "I-LOC", "B-LOC"], "IOB2",
     [("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 4)], [("LOC", 4, 4)]),
    (["B-PER", "I-LOC", "I-LOC"], "IOB2", [("PER", 0, 0), ("LOC", 1, 2)], [("PER", 0, 0)]),
    (["B-PER", "B-PER"], "IOB2", [("PER", 0, 0), ("PER", 1, 1)], [("PER", 0, 0), ("PER", 1, 1)]),
    (["B-PER", "I-PER", "E-PER", "O", "S-LOC", "B-ORG", "O"], "IOBES",
     [("PER", 0, 2), ("LOC", 4, 4), ("ORG", 5, 5)], [("PER", 0, 2), ("LOC", 4, 4)]),
    (["E-PER", "E-PER", "I-PER", "S-PER", "I-PER"], "IOBES",
     [("PER", 0, 0), ("PER", 1, 1), ("PER", 2, 2), ("PER", 3, 3), ("PER", 4, 4)], [("PER", 3, 3)]),
    (["B-PER", "E-PER", "E-PER"], "IOBES", [("PER", 0, 1), ("PER", 2, 2)], [("PER", 0, 1)]),
    (["B-PER", "I-PER", "E-LOC"], "IOBES", [("PER", 0, 1), ("LOC", 2, 2)], []),
    (["I-PER", "I-PER", "I-LOC", "O", "I-LOC"], "IO", [("PER", 0, 1), ("LOC", 2, 2), ("LOC", 4, 4)],
     [("PER", 0, 1), ("LOC", 2, 2), ("LOC", 4, 4)]),
    ([], "IOB2", [], []),
    (["O", "O"], "IOBES", [], []),
])
def test_extract_entities(tags, scheme, default, strict):
    assert extract_entities(tags, scheme=scheme) == default
    assert extract_entities(tags, mode="strict", scheme=scheme) == strict


def test_sentences_are_joined_with_an_o_between_them():
    # An I- opening the next sentence never continues the last entity of the one before.
    sentences = [["B-PER", "I-PER"], ["I-PER"], [], ["B-LOC"]]
    assert extract_entities(sentences) == [("PER", 0, 1), ("PER", 3, 3), ("LOC", 6, 6)]
    assert extract_entities(sentences, mode="strict") == [("PER", 0, 1), ("LOC", 6, 6)]


def test_extract_entities_names_the_bad_tag():
    with pytest.raises(ValueError, match=r"^sentence 1, token 0: tag 'E-PER' is not an IOB2 tag"):
        extract_entities([["B-PER", "O"], ["E-PER"]])
    with pytest.raises(ValueError, match=r"^token 2: malformed tag 'BPER'"):
        extract_entities(["O", "O", "BPER"], scheme="IOBES")
    with pytest.raises(ValueError, match="not a mix"):
        extract_entities([["B-PER"], "O"])
    with pytest.raises(ValueError, match="mode must be one of"):
        extract_entities(["O"], mode="lenient")
