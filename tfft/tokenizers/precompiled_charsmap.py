"""HF's `Precompiled` normalizer (SentencePiece's charsmap, e.g. nmt_nfkc) replayed on tf.string tensors.

HF does not apply the charsmap like SentencePiece (longest match at every position). It walks
extended grapheme clusters: a cluster shorter than 6 bytes of which some prefix is a charsmap key is
replaced as a whole by the value of the shortest such prefix; any other cluster is mapped character
by character. So "a" + three combining accents or conjoining Hangul jamo stay as they are in HF but
are composed by SentencePiece. Clusters are found with RE2 classes (base, extending and
prepended characters) and the charsmap keys are read straight out of its double-array trie.
"""

from __future__ import annotations

import functools
import struct
import unicodedata

import numpy as np
import tensorflow as tf

from tfft.tokenizers import char_tables

# Grapheme_Cluster_Break=Prepend (Unicode 15).
_PREPEND = ([*range(0x600, 0x606), 0x6DD, 0x70F, 0x890, 0x891, 0x8E2, 0xD4E, 0x110BD, 0x110CD, 0x111C2, 0x111C3,
             0x1193F, 0x11941, 0x11A3A, *range(0x11A84, 0x11A8A), 0x11D46, 0x11F02])
_NOT_CONTROL = {0x200C, 0x200D}  # ZWNJ and ZWJ extend clusters though they are Cf


@functools.lru_cache(maxsize=4)
def parse_charsmap(charsmap: bytes, max_key_bytes: int = 5) -> dict[str, str]:
    """The (key, value) pairs of a SentencePiece precompiled charsmap with keys of at most max_key_bytes.

    The charsmap is a darts-clone double-array trie over UTF-8 key bytes, then a blob of
    NUL-terminated values. HF only ever looks up keys shorter than 6 bytes.
    """
    (size,) = struct.unpack_from("<I", charsmap)
    units = np.frombuffer(charsmap, dtype="<u4", count=size // 4, offset=4).astype(np.int64)
    blob = charsmap[4 + size:]
    labels = units & ((1 << 31) | 0xFF)
    offsets = (units >> 10) << ((units & (1 << 9)) >> 6)
    byte_values = np.arange(1, 256)
    out = {}
    stack = [(int(offsets[0]), b"")]
    while stack:
        pos, prefix = stack.pop()
        children = pos ^ byte_values
        ok = children < len(units)
        ok[ok] = labels[children[ok]] == byte_values[ok]
        for byte, child in zip(byte_values[ok].tolist(), children[ok].tolist()):
            nxt = child ^ int(offsets[child])
            key = prefix + bytes([byte])
            if (units[child] >> 8) & 1:  # a key ends here; the leaf unit holds its value's offset
                start = int(units[nxt]) & ((1 << 31) - 1)
                out[key.decode("utf-8")] = blob[start:blob.index(b"\0", start)].decode("utf-8")
            if len(key) < max_key_bytes:
                stack.append((nxt, key))
    return out


@functools.lru_cache(maxsize=4)
def _cluster_classes(charsmap: bytes) -> tuple[str, str, str]:
    """RE2 classes (base, extend, prepend) for HF's grapheme clusters, as far as they matter here.

    Extenders are probed from HF itself: with P = "²" + U+0301 (one cluster HF maps to "2"),
    P + c maps to "2" + f(c) when c starts a new cluster and to f("²") + f(U+0301) + f(c) when c
    extends P (the cluster is then 6 bytes or more and mapped char by char). Characters that map to
    "" cannot be told apart that way; there and for control characters Unicode categories decide.
    """
    from tokenizers import normalizers

    category = [unicodedata.category(chr(c)) for c in range(0x110000)]
    extend = {c for c, cat in enumerate(category) if cat in ("Mn", "Me", "Mc")} | _NOT_CONTROL
    extend |= set(range(0x1F3FB, 0x1F400))  # emoji modifiers
    keys = parse_charsmap(charsmap)
    normalizer = normalizers.Precompiled(charsmap)
    for base in ("\u00b2", "\u00aa", "\u00b5"):
        head = base + "\u0301"
        if keys.get(base) in (None, "", base) or normalizer.normalize_str(head) != keys[base]:
            continue
        cps = [c for c in range(0x80, 0x110000) if not 0xD800 <= c <= 0xDFFF and c not in char_tables.UNASSIGNED_PLANES
               and category[c] != "Co"]
        glued = char_tables.normalize_each(normalizer.normalize_str, [head + chr(c) for c in cps])
        alone = char_tables.normalize_each(normalizer.normalize_str, [chr(c) for c in cps])
        split_head = keys[base] + normalizer.normalize_str("\u0301")
        for c, g, a in zip(cps, glued, alone):
            if a == "" and split_head == keys[base]:
                continue
            if g == keys[base] + a:
                extend.discard(c)
            elif g == split_head + a:
                extend.add(c)
        break
    control = {c for c, cat in enumerate(category) if cat in ("Cc", "Zl", "Zp", "Cf")} - _NOT_CONTROL
    special = extend | control | set(_PREPEND)
    everything_else = [c for c, cat in enumerate(category) if cat != "Cs" and c not in special]
    return (char_tables.regex_class(everything_else), char_tables.regex_class(extend),
            char_tables.regex_class(_PREPEND))


class PrecompiledNormalizer(tf.Module):
    """Applies a precompiled charsmap to a 1-D tf.string tensor exactly as HF's Precompiled does."""

    def __init__(self, charsmap: bytes):
        super().__init__()
        from tfft.tokenizers.char_mapper import CharMapper

        keys = parse_charsmap(charsmap)
        single = {k: v for k, v in keys.items() if len(k) == 1}
        self._chars = CharMapper(char_tables.CharMap(
            removed=tuple(ord(k) for k, v in single.items() if v == ""),
            spaced=(), padded=(), mapped={k: v for k, v in single.items() if v != ""},
        ))
        short = {k: v for k, v in keys.items() if len(k.encode("utf-8")) < 6}
        self._max_chars = max(len(k) for k in short)
        self._short = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(short)), tf.constant([v + "\x01" for v in short.values()])
            ),
            default_value="",  # values carry a trailing \x01 so that "" means "not a key"
        )
        base, extend, prepend = _cluster_classes(charsmap)
        self._cluster = f"{prepend}+{base}?{extend}*|{base}{extend}+|{extend}+|\\r\\n"

    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        from tfft.tokenizers.tokenizer_layer import regex_split

        pieces = regex_split(texts, keep=self._cluster)
        flat = pieces.flat_values
        chars = tf.strings.unicode_split(flat, "UTF-8")
        found = tf.fill(tf.shape(flat), "")
        for k in range(self._max_chars, 0, -1):  # the shortest key prefix wins
            value = self._short.lookup(tf.strings.reduce_join(chars[:, :k], axis=-1))
            found = tf.where(value != "", value, found)
        whole = (
            tf.strings.regex_full_match(flat, self._cluster)
            & (tf.strings.length(flat) < 6)
            & (found != "")
        )
        found = tf.strings.regex_replace(found, "\x01$", "")  # drop the marker
        mapped = tf.where(whole, found, self._chars(flat))
        return tf.strings.reduce_join(pieces.with_flat_values(mapped), axis=-1)
