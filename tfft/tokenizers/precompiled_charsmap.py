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
from tfft.tokenizers.char_offsets import CodePointMap, NormalizedChars, exclusive_cumsum_in_rows, positions_in_rows

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
        char_map = char_tables.CharMap(
            removed=tuple(ord(k) for k, v in single.items() if v == ""),
            spaced=(), padded=(), mapped={k: v for k, v in single.items() if v != ""},
        )
        self._chars = CharMapper(char_map)
        self._code_points = CodePointMap(char_map)
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

    def _clusters(self, texts: tf.Tensor) -> tuple[tf.RaggedTensor, tf.Tensor, tf.Tensor]:
        """(pieces [n, (p)], whole [P], found [P]): the texts cut into clusters and runs of other
        characters; whether HF replaces a piece as a whole, and by what."""
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
        return pieces, whole, tf.strings.regex_replace(found, "\x01$", "")  # drop the marker

    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        pieces, whole, found = self._clusters(texts)
        mapped = tf.where(whole, found, self._chars(pieces.flat_values))
        return tf.strings.reduce_join(pieces.with_flat_values(mapped), axis=-1)

    def align(self, chars: NormalizedChars) -> NormalizedChars:
        """The charsmap applied to characters with sources, each output aligned the way HF aligns it.

        HF's Precompiled turns each replaced cluster or character of n characters into m with
        changes (0 each; the last m - n are +1 "inserted" when m > n; the last gets m - n when
        0 < m < n) and, when m == 0, adds -n to the change of the previous output, if any. Its
        `transform` then walks them: an inserted character takes the alignment of the input
        character before the cursor, any other the one at the cursor, which then moves past
        1 - change characters. A removal at the very start is lost, so what follows shifts.
        """
        rows = chars.by_row()
        pieces, whole, found = self._clusters(tf.strings.unicode_encode(rows, "UTF-8"))
        piece_chars = tf.cast(tf.strings.length(pieces.flat_values, unit="UTF8_CHAR"), tf.int64)
        piece_of = tf.repeat(tf.range(tf.size(piece_chars, out_type=tf.int64)), piece_chars)  # [N]
        index = tf.range(tf.size(piece_of, out_type=tf.int64))
        first_in_piece = index == tf.gather(tf.cumsum(piece_chars, exclusive=True), piece_of)
        begins = first_in_piece | ~tf.gather(whole, piece_of)  # a unit: a whole cluster, or one character
        unit_of = tf.cumsum(tf.cast(begins, tf.int64)) - 1
        old = tf.math.segment_sum(tf.ones_like(unit_of), unit_of)  # n of each unit
        first_char = tf.boolean_mask(index, begins)
        unit_piece = tf.gather(piece_of, first_char)
        unit_whole = tf.gather(whole, unit_piece)
        by_whole = tf.strings.unicode_decode(tf.where(unit_whole, tf.gather(found, unit_piece), ""), "UTF-8")
        by_char = self._code_points(tf.gather(chars.code_points, first_char))
        by_char = tf.ragged.boolean_mask(by_char, by_char.with_flat_values(tf.repeat(~unit_whole,
                                                                                     by_char.row_lengths())))
        new = tf.concat([tf.cast(by_whole, tf.int32), by_char], axis=1)  # [U, (m)]: each row holds one of the two
        m, unit_row = new.row_lengths(), tf.gather(chars.row, first_char)
        row = tf.repeat(unit_row, m)
        k, m_of, n_of = positions_in_rows(new), tf.repeat(m, m), tf.repeat(old, m)
        shrink = tf.where((k == m_of - 1) & (m_of < n_of), m_of - n_of, tf.zeros_like(k))
        change = tf.where(k >= n_of, tf.ones_like(k), shrink)
        # Removals: -n onto the previous output, if it is in the same row.
        before = tf.cumsum(m, exclusive=True) - 1
        previous_row = tf.gather(tf.concat([row, [-1]], 0), tf.where(before < 0, tf.size(row, out_type=tf.int64),
                                                                     before))  # -1: no previous output
        target = (m == 0) & (before >= 0) & (previous_row == unit_row)
        change = tf.tensor_scatter_nd_add(change, tf.expand_dims(tf.boolean_mask(before, target), 1),
                                          -tf.boolean_mask(old, target))
        # HF's transform: the cursor (in input characters of the row) before each output.
        output_starts = tf.RaggedTensor.from_value_rowids(row, row, nrows=chars.n).row_starts()
        cursor = exclusive_cumsum_in_rows(tf.where(change > 0, tf.zeros_like(change), 1 - change), row, output_starts)
        at = tf.where(change > 0, cursor - 1, cursor)
        origin = tf.where(at < 0, tf.constant(-1, tf.int64), at + tf.gather(rows.row_starts(), row))
        return chars.derived(new.flat_values, row, origin)
