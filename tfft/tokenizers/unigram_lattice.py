"""HF's unigram (SentencePiece) segmentation as TF ops, bit-for-bit.

tensorflow-text's SentencepieceTokenizer sums piece scores in float32 in another order than HF's
float64 lattice, so segmentations of equal score (runs like "!!!!!" or "000") come out differently.
This module runs HF's `encode_optimized` itself: the best path to each character position is
max(best[start] + score(piece)) in float64, the earliest start winning ties; a position with no
one-character piece gets the unknown piece (score min - 10); consecutive unknowns are fused.
"""

from __future__ import annotations

import tensorflow as tf

_UNK_PENALTY = 10.0


class UnigramLattice(tf.Module):
    """Segments a 1-D tf.string batch of words into unigram piece ids ([n, (pieces)], int32)."""

    def __init__(self, vocab: list[tuple[str, float]], unk_id: int):
        super().__init__()
        ids = {piece: i for i, (piece, _) in enumerate(vocab) if piece}  # later duplicates win, as in HF
        prefixes = {piece[:k] for piece in ids for k in range(1, len(piece))}
        self._unk_id = int(unk_id)
        self._unk_score = min(score for _, score in vocab) - _UNK_PENALTY
        self._max_len = max(len(piece) for piece in ids)
        self._scores = tf.constant([score for _, score in vocab], tf.float64)
        # piece -> id, and -2 for strings that only begin longer pieces (the search goes on).
        keys = list(ids) + sorted(prefixes - ids.keys())
        values = list(ids.values()) + [-2] * (len(keys) - len(ids))
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values, tf.int32)), default_value=-1
        )

    def _candidates(self, flat: tf.Tensor, room: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Piece ids and scores [C, max_len]: the piece of l chars starting at each position (-1/-inf: none)."""
        total = tf.shape(flat)[0]
        alive = tf.range(total)  # positions whose substring so far still begins some piece
        piece = tf.gather(flat, alive)
        ids = []
        for length in range(1, self._max_len + 1):
            found = self._table.lookup(piece)
            ids.append(tf.scatter_nd(tf.expand_dims(alive, 1), tf.maximum(found, -1) + 1, [total]) - 1)
            keep = (found != -1) & (tf.gather(room, alive) > length)  # may grow into a longer piece
            alive = tf.boolean_mask(alive, keep)
            piece = tf.boolean_mask(piece, keep) + tf.gather(flat, alive + length)
        ids = tf.stack(ids, axis=1)
        scores = tf.where(ids >= 0, tf.gather(self._scores, tf.maximum(ids, 0)), float("-inf"))
        # A position with no one-character piece gets the unknown piece instead.
        unknown = ids[:, 0] < 0
        ids = tf.concat([tf.expand_dims(tf.where(unknown, self._unk_id, ids[:, 0]), 1), ids[:, 1:]], axis=1)
        first = tf.where(unknown, tf.constant(self._unk_score, tf.float64), scores[:, 0])
        return ids, tf.concat([tf.expand_dims(first, 1), scores[:, 1:]], axis=1)

    def __call__(self, words: tf.Tensor, with_lengths: bool = False) -> tf.RaggedTensor:
        """Piece ids [n, (pieces)]; with_lengths: [n, (pieces), 2] rows of (id, length in characters)."""
        chars = tf.strings.unicode_split(words, "UTF-8")
        flat = chars.flat_values  # [C]
        lengths = tf.cast(chars.row_lengths(), tf.int32)  # [n]
        starts = tf.cast(chars.row_starts(), tf.int32)
        n, longest = tf.shape(lengths)[0], tf.reduce_max(tf.concat([lengths, [0]], 0))
        room = tf.repeat(lengths, lengths) - (tf.range(tf.shape(flat)[0]) - tf.repeat(starts, lengths))
        cand_ids, cand_scores = self._candidates(flat, room)
        max_len = self._max_len
        back = tf.range(max_len)  # column j: the piece of j + 1 chars ending at the current position

        # Longest words first: at position e only the first active[e] words are still going.
        order = tf.argsort(lengths, direction="DESCENDING", stable=True)
        sorted_starts, sorted_lengths = tf.gather(starts, order), tf.gather(lengths, order)
        active = tf.reduce_sum(tf.cast(tf.expand_dims(sorted_lengths, 0) >= tf.expand_dims(tf.range(longest + 1), 1),
                                       tf.int32), axis=1)  # [longest + 1]
        neg_inf = tf.constant(float("-inf"), tf.float64)
        # history[:, j]: best score of the path ending j + 1 positions back (0 at the word start).
        history = tf.concat([tf.zeros([n, 1], tf.float64), tf.fill([n, max_len - 1], neg_inf)], axis=1)

        def step(end, history, chosen):
            m = active[end]
            history = history[:m]
            begin = end - 1 - back  # [L]
            index = tf.expand_dims(sorted_starts[:m], 1) + tf.maximum(tf.expand_dims(begin, 0), 0)
            at = tf.stack([index, tf.broadcast_to(back, tf.shape(index))], axis=-1)
            cand = tf.where(tf.expand_dims(begin, 0) >= 0, tf.gather_nd(cand_scores, at) + history, neg_inf)
            best = tf.reduce_max(cand, axis=1)
            # Ties go to the earliest start, i.e. the longest piece.
            pick = tf.maximum(tf.reduce_max(tf.where(cand == tf.expand_dims(best, 1), back, -1), axis=1), 0)
            piece_id = tf.gather(tf.gather_nd(cand_ids, at), pick, batch_dims=1)
            chosen = chosen.write(end - 1, tf.stack([pick + 1, piece_id], axis=1))
            return end + 1, tf.concat([tf.expand_dims(best, 1), history[:, :-1]], axis=1), chosen

        chosen = tf.TensorArray(tf.int32, size=longest, infer_shape=False, element_shape=[None, 2])
        _, _, chosen = tf.while_loop(
            lambda end, *_: end <= longest, step, (tf.constant(1), history, chosen),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, max_len]), None),
        )
        # Step e's choices are rows offset[e - 1] + rank; row 0 is a stand-in for finished words.
        chosen = tf.concat([tf.constant([[0, -1]], tf.int32), chosen.concat()], 0)
        offset = tf.concat([[1], 1 + tf.cumsum(active[1:])], 0)

        # Walk back from each word's end; pieces come out last first, -1 once a word is done.
        def walk(i, position, out):
            done = position <= 0
            row = tf.gather(chosen, tf.where(done, 0, tf.gather(offset, tf.maximum(position - 1, 0)) + tf.range(n)))
            if with_lengths:
                out = out.write(i, tf.where(tf.expand_dims(done, 1), -1, tf.reverse(row, axis=[1])))
            else:
                out = out.write(i, tf.where(done, -1, row[:, 1]))
            return i + 1, tf.where(done, 0, position - row[:, 0]), out

        shape = [None, 2] if with_lengths else [None]
        out = tf.TensorArray(tf.int32, size=longest + 1, element_shape=shape)
        _, _, out = tf.while_loop(lambda i, *_: i < longest, walk, (tf.constant(0), sorted_lengths, out))
        out = out.write(longest, tf.fill([n] + shape[1:], -1))
        if with_lengths:
            pieces = tf.reverse(tf.transpose(out.stack(), [1, 0, 2]), axis=[1])  # [n, longest + 1, 2]
            pieces = tf.scatter_nd(tf.expand_dims(order, 1), pieces, tf.shape(pieces))
            return self._fuse_unknowns(tf.ragged.boolean_mask(pieces, pieces[:, :, 0] >= 0))
        pieces = tf.reverse(tf.transpose(out.stack()), axis=[1])  # [n, longest + 1], sorted order
        pieces = tf.scatter_nd(tf.expand_dims(order, 1), pieces, tf.shape(pieces))  # back to input order
        ids = tf.ragged.boolean_mask(pieces, pieces >= 0)
        # Fuse runs of unknowns into one, like HF's fuse_unk.
        values, rows = ids.flat_values, ids.value_rowids()
        first = tf.not_equal(rows, tf.concat([tf.constant([-1], rows.dtype), rows[:-1]], 0))
        previous = tf.where(first, -1, tf.concat([[-1], values[:-1]], 0))
        keep = ~((values == self._unk_id) & (previous == self._unk_id))
        return tf.ragged.boolean_mask(ids, ids.with_flat_values(keep))

    def _fuse_unknowns(self, pieces: tf.RaggedTensor) -> tf.RaggedTensor:
        """HF's fuse_unk on [n, (pieces), 2] rows of (id, length): a run of unknowns is one, as long as all."""
        values, rows = pieces.flat_values, pieces.value_rowids()
        first = tf.not_equal(rows, tf.concat([tf.constant([-1], rows.dtype), rows[:-1]], 0))
        previous = tf.where(first, -1, tf.concat([[-1], values[:-1, 0]], 0))
        keep = ~((values[:, 0] == self._unk_id) & (previous == self._unk_id))
        group = tf.cumsum(tf.cast(keep, tf.int64)) - 1
        lengths = tf.math.segment_sum(values[:, 1], group)
        fused = tf.stack([tf.boolean_mask(values[:, 0], keep), lengths], axis=1)
        return tf.RaggedTensor.from_value_rowids(fused, tf.boolean_mask(rows, keep), nrows=pieces.nrows())
