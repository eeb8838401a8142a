"""Replays a per-character normalizer, probed out of HF (`char_tables.CharMap`), on tf.string tensors."""

from __future__ import annotations

import tensorflow as tf

from tfft.tokenizers import char_tables


class CharMapper(tf.Module):
    """Replays a per-character HF normalizer (a `char_tables.CharMap`) on tf.string tensors."""

    def __init__(self, char_map: char_tables.CharMap):
        super().__init__()
        self._removed = char_tables.regex_class(char_map.removed)
        self._spaced = char_tables.regex_class(char_map.spaced)
        self._padded = char_tables.regex_class(char_map.padded)
        self._table = None
        if char_map.mapped:
            self._table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(list(char_map.mapped)), tf.constant(list(char_map.mapped.values()))
                ),
                default_value="",  # no char maps to "" here: those are in `removed`
            )

    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        if self._removed:
            texts = tf.strings.regex_replace(texts, self._removed, "")
        if self._spaced:
            texts = tf.strings.regex_replace(texts, self._spaced, " ")
        if self._padded:
            texts = tf.strings.regex_replace(texts, self._padded, " \\0 ")
        if self._table is not None:
            chars = tf.strings.unicode_split(texts, "UTF-8")
            mapped = self._table.lookup(chars.flat_values)
            chars = chars.with_flat_values(tf.where(mapped == "", chars.flat_values, mapped))
            texts = tf.strings.reduce_join(chars, axis=-1)
        return texts
