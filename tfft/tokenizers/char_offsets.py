"""Bookkeeping for in-graph character offsets: which original character each normalized one is aligned with.

HF's NormalizedString aligns every normalized character with one original character (or none) and
reports a token's offsets as the original span from its first to its last normalized character.
Per-character normalizers (BertNormalizer's steps, Lowercase, StripAccents, a charsmap lookup)
align each output with the input it came from; NFD, Replace and the precompiled charsmap follow
HF's `transform` rules instead (`NormalizedChars.decomposed`, `replace_literal`,
`PrecompiledNormalizer.align`). Characters are int32 code points (string ops per character cost
several times more); positions count code points, as Python str indices do, not the bytes
tf.strings count.
"""

from __future__ import annotations

import tensorflow as tf

from tfft.tokenizers import char_tables


def positions_in_rows(ragged: tf.RaggedTensor) -> tf.Tensor:
    """int64 index of every flat value of a [n, (k)] RaggedTensor within its row."""
    return tf.range(tf.shape(ragged.flat_values, out_type=tf.int64)[0]) - tf.gather(ragged.row_starts(),
                                                                                   ragged.value_rowids())


def exclusive_cumsum_in_rows(values: tf.Tensor, row_ids: tf.Tensor, row_starts: tf.Tensor) -> tf.Tensor:
    """For each of `values`, the sum of the values before it in the same row (rows given by ids and starts)."""
    total = tf.cumsum(values, exclusive=True)
    first = tf.gather(tf.concat([total, tf.zeros([1], total.dtype)], 0), row_starts)  # empty rows: unused
    return total - tf.gather(first, row_ids)


def utf8_lengths(code_points: tf.Tensor) -> tf.Tensor:
    """Bytes each code point takes in UTF-8 (int64)."""
    cps = tf.cast(code_points, tf.int64)
    return 1 + tf.cast(cps >= 0x80, tf.int64) + tf.cast(cps >= 0x800, tf.int64) + tf.cast(cps >= 0x10000, tf.int64)


def chars_at_bytes(byte_starts: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
    """Index of the character holding each byte position, given every character's (increasing) first byte."""
    found = tf.searchsorted(tf.expand_dims(byte_starts, 0), tf.expand_dims(positions, 0), side="right",
                            out_type=tf.int64)
    return found[0] - 1


def span(first_source: tf.Tensor, last_source: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """HF's (start, end) of a token from the sources of its first and last characters (-1: 0, 0)."""
    return tf.maximum(first_source, 0), tf.where(last_source < 0, tf.zeros_like(last_source), last_source + 1)


def tokens_by_row(ids, starts, ends, token_word, word_row, n) -> tuple[tf.RaggedTensor, tf.Tensor]:
    """(tokens [n, (t), 4] int32 rows of (id, start, end, word within its row), words per row [n] int32).

    Tokens and words come flat and in order; token_word: each token's word; word_row: each word's row.
    """
    words_per_row = tf.math.unsorted_segment_sum(tf.ones_like(word_row), word_row, n)
    word_in_row = tf.range(tf.size(word_row, out_type=tf.int64)) - tf.gather(tf.cumsum(words_per_row, exclusive=True),
                                                                            word_row)
    values = tf.stack([tf.cast(ids, tf.int64), starts, ends, tf.gather(word_in_row, token_word)], axis=1)
    tokens = tf.RaggedTensor.from_value_rowids(tf.cast(values, tf.int32), tf.gather(word_row, token_word), nrows=n)
    return tokens, tf.cast(words_per_row, tf.int32)


class CodePointTable(tf.Module):
    """int32 code point -> int32 value, for a few explicit code points and a default for all others.

    Stored as runs of consecutive code points with equal values (binary search), which keeps
    Unicode-wide classes such as "every CJK ideograph" small.
    """

    def __init__(self, values: dict[int, int], default: int = 0):
        super().__init__()
        starts, run_values, end = [0], [default], 0  # end: the code point after the last one seen
        for cp in sorted(values):
            if cp != end and run_values[-1] != default:  # a gap of default values before cp
                starts.append(end)
                run_values.append(default)
            if run_values[-1] != values[cp]:
                if starts[-1] == cp:  # only at code point 0
                    run_values[-1] = values[cp]
                else:
                    starts.append(cp)
                    run_values.append(values[cp])
            end = cp + 1
        if run_values[-1] != default:
            starts.append(end)
            run_values.append(default)
        self._starts = tf.constant([starts], tf.int32)
        self._values = tf.constant(run_values, tf.int32)

    def __call__(self, code_points: tf.Tensor) -> tf.Tensor:
        runs = tf.searchsorted(self._starts, tf.expand_dims(code_points, 0), side="right")[0] - 1
        return tf.gather(self._values, runs)


class CodePointMap(tf.Module):
    """A per-character normalizer (a `char_tables.CharMap`) on code points: each to its output code points."""

    def __init__(self, char_map: char_tables.CharMap):
        super().__init__()
        outputs = [[-1], [], [0x20], [0x20, -1, 0x20]]  # -1: the input code point itself
        rows = {cp: 1 for cp in char_map.removed}
        rows.update({cp: 2 for cp in char_map.spaced})
        rows.update({cp: 3 for cp in char_map.padded})
        for char, replacement in char_map.mapped.items():
            rows[ord(char)] = len(outputs)
            outputs.append([ord(c) for c in replacement])
        self._rows = CodePointTable(rows)
        self._outputs = tf.RaggedTensor.from_row_lengths(
            tf.constant([cp for out in outputs for cp in out], tf.int32), [len(out) for out in outputs]
        )

    def __call__(self, code_points: tf.Tensor) -> tf.RaggedTensor:
        """[n] code points -> [n, (k)] their normalized code points."""
        out = tf.gather(self._outputs, self._rows(code_points))
        itself = tf.repeat(code_points, out.row_lengths())
        return out.with_flat_values(tf.where(out.flat_values < 0, itself, out.flat_values))


class NormalizedChars:
    """The code points of a 1-D tf.string batch after per-character normalizers, with their sources.

    code_points: [N] the normalized characters; row: [N] the input string each belongs to (rows
    in order); source: [N] the code point index, in that input string, of the character HF aligns
    it with (-1: HF's empty alignment, offsets 0/0); n: the number of input strings.

    Example:
        nc = NormalizedChars(tf.constant(["Ab"])).then(CodePointMap(char_tables.probe_normalizer(lowercase)))
        nc.code_points  # [97, 98]; nc.source: [0, 1]
    """

    def __init__(self, texts: tf.Tensor | None = None):
        if texts is not None:
            chars = tf.strings.unicode_decode(texts, "UTF-8")
            self.code_points, self.row, self.source = chars.flat_values, chars.value_rowids(), positions_in_rows(chars)
            self.n = chars.nrows()

    def derived(self, code_points: tf.Tensor, row: tf.Tensor, origin: tf.Tensor) -> NormalizedChars:
        """New characters of the same rows, each aligned with the character at flat index origin[j]
        of these (-1: HF's empty alignment)."""
        out = NormalizedChars()
        out.code_points, out.row, out.n = code_points, row, self.n
        out.source = tf.where(origin < 0, tf.constant(-1, tf.int64), tf.gather(self.source, tf.maximum(origin, 0)))
        return out

    def expanded(self, outputs: tf.RaggedTensor) -> NormalizedChars:
        """outputs[i] (a [N, (k)] RaggedTensor; -1 stands for character i) in place of each character i,
        aligned with character i."""
        origin = outputs.value_rowids()
        itself = tf.gather(self.code_points, origin)
        return self.derived(tf.where(outputs.flat_values < 0, itself, outputs.flat_values),
                            tf.gather(self.row, origin), origin)

    def then(self, mapper: CodePointMap | None) -> NormalizedChars:
        """These characters after one more per-character normalizer (None: unchanged)."""
        return self if mapper is None else self.expanded(mapper(self.code_points))

    def decomposed(self, decompose: CodePointMap, classes: CodePointTable) -> NormalizedChars:
        """HF's NFD (or NFKD; `decompose` maps each code point to its decomposition, `classes` to its
        canonical combining class), aligned the way HF aligns it.

        Each decomposition's first character replaces its source and the others are inserted;
        runs of non-starters are then stably sorted by combining class, carrying that along, and
        HF's transform aligns by position: the k-th replacing output of a row with the k-th input.
        So a mark moved ahead of others takes the alignment of the place it moved to.
        """
        pieces = decompose(self.code_points)
        cps, origin = pieces.flat_values, pieces.value_rowids()
        inserted = positions_in_rows(pieces) > 0
        row = tf.gather(self.row, origin)
        ccc = tf.cast(classes(cps), tf.int64)
        index = tf.range(tf.size(cps, out_type=tf.int64))
        starter = ccc == 0
        run_begins = ~starter & tf.concat([[True], starter[:-1] | (row[1:] != row[:-1])], 0)
        run_start = tf.gather(tf.concat([[0], tf.boolean_mask(index, run_begins)], 0),
                              tf.cumsum(tf.cast(run_begins, tf.int64)))  # starters: unused
        order = tf.argsort(tf.where(starter, index, run_start) * 256 + ccc, stable=True)
        cps, inserted = tf.gather(cps, order), tf.gather(inserted, order)
        starts = self.by_row().row_starts()
        output_starts = tf.RaggedTensor.from_value_rowids(row, row, nrows=self.n).row_starts()
        cursor = exclusive_cumsum_in_rows(1 - tf.cast(inserted, tf.int64), row, output_starts)
        at = tf.where(inserted, cursor - 1, cursor)
        return self.derived(cps, row, tf.where(at < 0, tf.constant(-1, tf.int64), at + tf.gather(starts, row)))

    def by_row(self) -> tf.RaggedTensor:
        """The code points as [n, (chars)]."""
        return tf.RaggedTensor.from_value_rowids(self.code_points, self.row, nrows=self.n)

    def replace_literal(self, pattern: str, content: str) -> NormalizedChars:
        """HF's Replace(String(pattern), content): each leftmost match becomes `content`, whose
        characters HF aligns with the match's last character."""
        rows = self.by_row()
        pieces = tf.strings.split(tf.strings.unicode_encode(rows, "UTF-8"), sep=pattern)  # [n, (matches + 1)]
        lengths = tf.cast(tf.strings.length(pieces.flat_values, unit="UTF8_CHAR"), tf.int64)
        piece_row, index = pieces.value_rowids(), positions_in_rows(pieces)
        k = len(pattern)
        local = exclusive_cumsum_in_rows(lengths, piece_row, pieces.row_starts()) + lengths + index * k
        is_match = index < tf.gather(pieces.row_lengths(), piece_row) - 1  # a match follows every piece but the last
        starts = tf.boolean_mask(local + tf.gather(rows.row_starts(), piece_row), is_match)
        # Per character: 0 kept, 1 dropped (inside a match), 2 the match's last character (becomes content).
        at = tf.reshape(tf.expand_dims(starts, 1) + tf.range(k, dtype=tf.int64), [-1, 1])
        kind = tf.tensor_scatter_nd_update(tf.zeros_like(self.code_points), at,
                                           tf.tile(tf.constant([1] * (k - 1) + [2], tf.int32), tf.shape(starts)[:1]))
        table = tf.ragged.constant([[-1], [], [ord(c) for c in content]], tf.int32, row_splits_dtype=tf.int64)
        return self.expanded(tf.gather(table, kind))
