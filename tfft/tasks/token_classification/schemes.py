"""Tag schemes for token classification: IOB2 (alias BIO), IOBES (alias BIOES) and IO.

A tag is "O" (outside any entity) or a prefix, "-" and an entity type: "B-PER", "I-geo-loc".
IOB2 uses B (begin) and I (inside); IOBES adds E (end) and S (single-word entity); IO has only I,
so two adjacent entities of one type cannot be told apart.

    >>> parse_tag("B-geo-loc")
    ('B', 'geo-loc')
    >>> convert(["B-PER", "I-PER", "O", "B-LOC"], "IOB2", "IOBES")
    ['B-PER', 'E-PER', 'O', 'S-LOC']
    >>> extract_entities(["B-PER", "I-PER", "O", "I-LOC"])          # seqeval's get_entities
    [('PER', 0, 1), ('LOC', 3, 3)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

OUTSIDE = "O"
SCHEMES = {"IOB2": ("B", "I"), "IOBES": ("B", "I", "E", "S"), "IO": ("I",)}
ALIASES = {"BIO": "IOB2", "BIOES": "IOBES"}
MODES = ("default", "strict")
_PREFIXES = ("B", "I", "E", "S")


def scheme_name(scheme: str) -> str:
    """The canonical name of a scheme or alias, any case: `scheme_name("bio") == "IOB2"`."""
    key = scheme.upper() if isinstance(scheme, str) else scheme
    name = ALIASES.get(key, key)
    if name not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected IOB2 (or BIO), IOBES (or BIOES) or IO")
    return name


def parse_tag(tag: str) -> tuple[str, str | None]:
    """A tag as (prefix, entity type); "O" is ("O", None). Raises ValueError for a malformed tag.

    The type is everything after the first "-", so types may hold "-" themselves ("B-geo-loc");
    it must not be empty, hold whitespace, or start or end with "-".

        >>> parse_tag("I-PER"), parse_tag("O")
        (('I', 'PER'), ('O', None))
    """
    if not isinstance(tag, str):
        raise ValueError(f"tag {tag!r} is a {type(tag).__name__}, not a string")
    if tag == OUTSIDE:
        return OUTSIDE, None
    prefix, dash, entity_type = tag.partition("-")
    if not tag.strip():
        raise ValueError(f"empty tag {tag!r}")
    if prefix == OUTSIDE:
        raise ValueError(f"malformed tag {tag!r}: O takes no entity type")
    if not dash or len(prefix) != 1:
        raise ValueError(f"malformed tag {tag!r}: expected O, or a one-letter prefix, '-' and an entity type "
                         "(such as B-PER)")
    if prefix not in _PREFIXES:
        raise ValueError(f"malformed tag {tag!r}: unknown prefix {prefix!r} (known: B, I, E, S, and the tag O)")
    if not entity_type:
        raise ValueError(f"malformed tag {tag!r}: no entity type after {prefix}-")
    if any(ch.isspace() for ch in entity_type) or entity_type.startswith("-") or entity_type.endswith("-"):
        raise ValueError(f"malformed tag {tag!r}: the entity type {entity_type!r} holds whitespace or starts "
                         "or ends with '-'")
    return prefix, entity_type


def check_tag(tag: str, scheme: str = "IOB2") -> tuple[str, str | None]:
    """`parse_tag(tag)`, after checking the tag belongs to `scheme`; a ValueError saying why otherwise.

        >>> check_tag("E-PER", "IOB2")
        ValueError: tag 'E-PER' is not an IOB2 tag: IOB2 has the prefixes B, I and the tag O
    """
    name = scheme_name(scheme)
    prefix, entity_type = parse_tag(tag)
    if prefix != OUTSIDE and prefix not in SCHEMES[name]:
        raise ValueError(f"tag {tag!r} is not an {name} tag: {name} has the prefixes "
                         f"{', '.join(SCHEMES[name])} and the tag O")
    return prefix, entity_type


def scheme_tags(entity_types: Iterable[str], scheme: str = "IOB2") -> list[str]:
    """Every tag of `scheme` for these entity types: "O" first, then each sorted type's tags.

        >>> scheme_tags(["PER", "LOC"], "IOB2")
        ['O', 'B-LOC', 'I-LOC', 'B-PER', 'I-PER']
    """
    prefixes = SCHEMES[scheme_name(scheme)]
    tags = [OUTSIDE] + [f"{prefix}-{t}" for t in sorted(set(entity_types)) for prefix in prefixes]
    for tag in tags:
        parse_tag(tag)
    return tags


def entity_types(tags: Sequence) -> list[str]:
    """The sorted entity types in a tag sequence, or a list of them.

        >>> entity_types([["B-PER", "I-PER", "O"], ["S-LOC"]])
        ['LOC', 'PER']
    """
    types = {parse_tag(tag)[1] for tag in _flatten(tags)[0]}
    return sorted(types - {None})


def _flatten(tags: Sequence) -> tuple[list[str], bool]:
    """One sequence of tags, and whether `tags` was a list of sentences (joined with an "O" after each)."""
    tags = list(tags)
    nested = [isinstance(item, (list, tuple)) for item in tags]
    if not any(nested):
        return tags, False
    if not all(nested):
        raise ValueError("tags must be one sequence of tag strings or a list of such sequences, not a mix")
    return [tag for sentence in tags for tag in [*sentence, OUTSIDE]], True


def _checked(tags: list[str], scheme: str, nested: bool, sentences: Sequence | None = None) -> list[tuple]:
    """(prefix, type) for each tag, or a ValueError naming the sentence and token of a bad tag."""
    parsed = []
    for index, tag in enumerate(tags):
        try:
            parsed.append(check_tag(tag, scheme))
        except ValueError as err:
            raise ValueError(f"{_position(index, nested, sentences)}: {err}") from None
    return parsed


def _position(index: int, nested: bool, sentences: Sequence | None) -> str:
    if not nested:
        return f"token {index}"
    for number, sentence in enumerate(sentences):
        if index < len(sentence):
            return f"sentence {number}, token {index}"
        index -= len(sentence) + 1
    return f"token {index}"


def _default_entities(parsed: list[tuple]) -> list[tuple[str, int, int]]:
    """seqeval's `get_entities` (conlleval's chunking): lenient, every non-O tag is in some entity."""
    entities = []
    prev, prev_type, begin = OUTSIDE, None, 0
    for i, (prefix, entity_type) in enumerate([*parsed, (OUTSIDE, None)]):
        ends = (prev in "ES" or (prev in "BI" and prefix in "BSO")
                or (prev != OUTSIDE and prev_type != entity_type))
        starts = (prefix in "BS" or (prev in "ESO" and prefix in "EI")
                  or (prefix != OUTSIDE and prev_type != entity_type))
        if ends:
            entities.append((prev_type, begin, i - 1))
        if starts:
            begin = i
        prev, prev_type = prefix, entity_type
    return entities


def _strict_entities(parsed: list[tuple], scheme: str) -> list[tuple[str, int, int]]:
    """seqeval's `mode="strict"`: only well-formed chunks; IOB2 B I*, IOBES B I* E or S, IO a run of I."""
    entities = []
    i, n = 0, len(parsed)
    while i < n:
        prefix, entity_type = parsed[i]
        if prefix == OUTSIDE or (scheme != "IO" and prefix not in "BS"):
            i += 1  # an I (or E) that starts nothing: not an entity in strict mode
            continue
        j = i + 1
        if prefix != "S":
            inside = "I" if scheme != "IOBES" else "IE"
            while j < n and parsed[j][0] in inside and parsed[j][1] == entity_type:
                j += 1
                if parsed[j - 1][0] == "E":
                    break
        if scheme != "IOBES" or parsed[j - 1][0] in "ES":
            entities.append((entity_type, i, j - 1))
        i = j
    return entities


def extract_entities(tags: Sequence, mode: str = "default", scheme: str = "IOB2") -> list[tuple[str, int, int]]:
    """The entities in a tag sequence as (type, start, end), `end` inclusive, as seqeval's `get_entities`.

    Args:
        tags: one sentence's tags, or a list of sentences; those are joined with an "O" after each,
            as seqeval does, so positions count one extra token per sentence boundary.
        mode: "default" reproduces seqeval's `get_entities` (conlleval's lenient chunking: an I- after
            O or after another type starts an entity, as does an E- or I- after E- or S-). "strict"
            reproduces seqeval's `mode="strict"`: only well-formed chunks count (IOB2 B-X I-X*,
            IOBES B-X I-X* E-X or S-X; for IO, where nothing is ill-formed, both modes agree).
        scheme: every tag must belong to it (ValueError naming the sentence and token otherwise).

        >>> extract_entities(["I-PER", "I-PER", "O", "B-LOC"], mode="strict")
        [('LOC', 3, 3)]
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    name = scheme_name(scheme)
    flat, nested = _flatten(tags)
    parsed = _checked(flat, name, nested, tags if nested else None)
    return _default_entities(parsed) if mode == "default" else _strict_entities(parsed, name)


def _encode(entities: list[tuple[str, int, int]], length: int, scheme: str) -> list[str]:
    tags = [OUTSIDE] * length
    for entity_type, start, end in entities:
        for i in range(start, end + 1):
            if scheme == "IO":
                prefix = "I"
            elif scheme == "IOBES" and start == end:
                prefix = "S"
            elif i == start:
                prefix = "B"
            else:
                prefix = "E" if scheme == "IOBES" and i == end else "I"
            tags[i] = f"{prefix}-{entity_type}"
    return tags


def convert(tags: Sequence[str], from_scheme: str, to_scheme: str) -> list[str]:
    """One sentence's tags rewritten from one scheme into another.

    The entities are read as seqeval's default mode does (so an ill-formed `I-PER` after `O` in
    IOB2 begins an entity) and written well-formed in `to_scheme`. Into IO is lossy: adjacent
    entities of one type merge. The same scheme on both sides returns the tags unchanged.

        >>> convert(["O", "I-PER", "I-PER", "B-PER"], "IOB2", "IOBES")
        ['O', 'B-PER', 'E-PER', 'S-PER']
        >>> convert(["I-LOC", "I-LOC", "O"], "IO", "IOB2")
        ['B-LOC', 'I-LOC', 'O']
    """
    source, target = scheme_name(from_scheme), scheme_name(to_scheme)
    tags = list(tags)
    if any(isinstance(tag, (list, tuple)) for tag in tags):
        raise ValueError("convert takes one sentence's tags; convert a list of sentences one by one")
    entities = _default_entities(_checked(tags, source, nested=False))
    return tags if source == target else _encode(entities, len(tags), target)
