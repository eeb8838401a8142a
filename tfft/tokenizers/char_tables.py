"""Character tables read off the HF tokenizers library itself, for the in-graph tokenizer layers.

HF's normalizers and pre-tokenizers decide per character with Unicode tables compiled into the
Rust library (control and punctuation classes, lowercase and NFD mappings). Re-deriving them from
Python's `unicodedata` or RE2's `\\p{...}` classes would differ wherever those Unicode versions
differ. Instead we run the HF component once over every code point and record what it did; the
in-graph layers then replay exactly that as RE2 character classes and lookup tables.
"""

from __future__ import annotations

import dataclasses
import functools

# Rust's `char::is_whitespace` (Unicode White_Space), which HF's whitespace splitting and added-token
# lstrip/rstrip use. Python's str.isspace() differs (it also counts U+001C..U+001F).
WHITESPACE = (
    list(range(0x09, 0x0E)) + [0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B))
    + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)

# Probe separators: a normalizer maps each code point on its own, so "c1▁c2▁..." normalizes to
# "n1▁n2▁..." unless some code point maps to something containing "▁"; then the next is tried.
# Planes 4 to 13 (U+40000..U+DFFFF) hold no assigned character in any Unicode version so far;
# probes that only look for assigned behaviour (punctuation, combining) skip them.
UNASSIGNED_PLANES = range(0x40000, 0xE0000)

_SEPARATORS = ("\u2581", "|", "\u3013")


@dataclasses.dataclass(frozen=True)
class CharMap:
    """What a per-character normalizer does to each code point, grouped for cheap in-graph replay.

    removed: code points mapped to "". spaced: mapped to " ". padded: mapped to " c " (CJK handling).
    mapped: every other change, {char: replacement}; code points in no group are left as they are.
    """

    removed: tuple[int, ...]
    spaced: tuple[int, ...]
    padded: tuple[int, ...]
    mapped: dict[str, str]


@functools.lru_cache(maxsize=16)
def probe_normalizer(normalizer_json: str) -> CharMap:
    """Run a per-character HF normalizer (given as its JSON) over all code points."""
    from tokenizers import Tokenizer

    normalizer = _tokenizer_with(Tokenizer, normalizer=normalizer_json).normalizer
    # Unassigned planes: one sample stands for all (no table can single out a code point there).
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and (c not in UNASSIGNED_PLANES or c == 0x50000)]
    out = normalize_each(normalizer.normalize_str, [chr(c) for c in cps])
    if out[cps.index(0x50000)] != chr(0x50000):
        raise AssertionError(f"normalizer {normalizer_json} changes unassigned code points")
    removed, spaced, padded, mapped = [], [], [], {}
    for c, s in zip(cps, out):
        ch = chr(c)
        if s == ch:
            continue
        if s == "":
            removed.append(c)
        elif s == " ":
            spaced.append(c)
        elif s == f" {ch} ":
            padded.append(c)
        else:
            mapped[ch] = s
    return CharMap(tuple(removed), tuple(spaced), tuple(padded), mapped)


def normalize_each(normalize_str, texts: list[str]) -> list[str]:
    """normalize_str applied to each text, in one call over the texts joined by a separator."""
    for sep in _SEPARATORS:
        odd = [i for i, t in enumerate(texts) if sep in t]
        if len(odd) > 16:
            continue
        plain = texts if not odd else [t for t in texts if sep not in t]
        out = normalize_str(sep.join(plain)).split(sep)
        if len(out) != len(plain):
            continue
        for i in odd:  # the few texts holding the separator itself go one by one
            out.insert(i, normalize_str(texts[i]))
        return out
    raise AssertionError("no usable probe separator")


@functools.lru_cache(maxsize=4)
def probe_pre_tokenizer(pre_tokenizer_json: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(dropped, isolated) code points of a split-by-character pre-tokenizer such as BertPreTokenizer.

    dropped: characters that split words and vanish (whitespace). isolated: characters that split
    words and become a word of their own (punctuation). Probed as "a c a c a ..." for every c.
    """
    from tokenizers import Tokenizer

    pre_tokenizer = _tokenizer_with(Tokenizer, pre_tokenizer=pre_tokenizer_json).pre_tokenizer
    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and c not in UNASSIGNED_PLANES]
    text = "a" + "a".join(chr(c) for c in cps) + "a"
    covered = bytearray(len(text))
    isolated = []
    for _, (start, end) in pre_tokenizer.pre_tokenize_str(text):
        covered[start:end] = b"\x01" * (end - start)
        if end - start == 1 and start % 2 == 1:
            isolated.append(cps[start // 2])
    dropped = [cps[i // 2] for i in range(1, len(text), 2) if not covered[i]]
    return tuple(dropped), tuple(isolated)


@functools.lru_cache(maxsize=1)
def probe_combining_classes() -> dict[int, int]:
    """{code point: canonical combining class} of the non-starters HF's NFD reorders (others are 0).

    Combining classes never change once assigned, so Python's table gives them; but HF's Unicode
    tables are older than Python's, and marks they lack are starters to HF. Each candidate is
    probed: HF moves it behind U+0334 (class 1), or ahead of U+0301 (class 230) for class 1 marks.
    Only characters NFD leaves as they are matter (the others never come out of a decomposition).
    """
    import unicodedata

    from tokenizers import normalizers

    nfd = normalizers.NFD().normalize_str
    marks = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and unicodedata.combining(chr(c))]
    marks = [m for m, d in zip(marks, normalize_each(nfd, marks)) if d == m]
    probes = ["a" + m + "\u0334" if unicodedata.combining(m) > 1 else "a\u0301" + m for m in marks]
    reordered = ["a\u0334" + m if unicodedata.combining(m) > 1 else "a" + m + "\u0301" for m in marks]
    return {ord(m): unicodedata.combining(m) for m, out, want in zip(marks, normalize_each(nfd, probes), reordered)
            if out == want}


def _tokenizer_with(tokenizer_cls, **parts: str):
    """A throwaway tokenizers.Tokenizer holding the given component JSONs, to call them from Python."""
    import json

    spec = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": None, "pre_tokenizer": None, "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"},
    }
    spec.update({k: json.loads(v) for k, v in parts.items()})
    return tokenizer_cls.from_str(json.dumps(spec))


def regex_class(code_points) -> str:
    """An RE2 character class matching exactly the given code points ("" when there are none)."""
    cps = sorted(set(code_points))
    if not cps:
        return ""
    parts, start, prev = [], cps[0], cps[0]
    for c in cps[1:] + [-1]:
        if c == prev + 1:
            prev = c
            continue
        parts.append(f"\\x{{{start:x}}}" if start == prev else f"\\x{{{start:x}}}-\\x{{{prev:x}}}")
        start = prev = c
    return "[" + "".join(parts) + "]"
