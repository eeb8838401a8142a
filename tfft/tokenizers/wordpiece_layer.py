"""In-graph BERT-style WordPiece tokenization, id-for-id equal to HF's fast tokenizer.

HF's pipeline is BertNormalizer -> BertPreTokenizer -> WordPiece. tensorflow-text's BertTokenizer
is close but not equal: it case-folds with NFKC (so "…", "ﬁ", "²" or full-width letters change),
uses RE2's Unicode tables instead of HF's, and counts the word-length limit in bytes instead of
characters. So the normalizer and the pre-tokenizer are replayed from tables probed out of HF
(see `char_tables`), and only the vocabulary lookup is tensorflow-text's FastWordpieceTokenizer.

For offsets the same steps run on code points that each remember the original character HF aligns
them with (`char_offsets`); FastWordpieceTokenizer's byte offsets within a word then map back to
those characters.
"""

from __future__ import annotations

import json

import keras
import tensorflow as tf

from tfft.errors import TokenizerError
from tfft.tokenizers import char_tables
from tfft.tokenizers.char_mapper import CharMapper
from tfft.tokenizers.char_offsets import (
    CodePointMap,
    CodePointTable,
    NormalizedChars,
    chars_at_bytes,
    span,
    tokens_by_row,
    utf8_lengths,
)
from tfft.tokenizers.tokenizer_layer import TokenizerLayer, TokenizerModel, regex_split


# BertPreTokenizer's classes of (normalized) characters.
_PLAIN, _DROPPED, _ISOLATED = 0, 1, 2


def _offset_stages(normalizer: dict) -> list:
    """BertNormalizer as per-character stages, with its NFD apart when it strips accents.

    Per character, BertNormalizer is one table (the ids path). But NFD also reorders combining
    marks, which moves the alignment of a mark HF keeps (e.g. the virama U+1B44, class 9, after
    a stripped accent); so the offsets path decomposes and reorders like HF in between.
    """
    strip = normalizer.get("strip_accents")
    strip = normalizer.get("lowercase", True) if strip is None else strip
    if not strip:
        return [CodePointMap(char_tables.probe_normalizer(json.dumps(normalizer)))]
    before = {**normalizer, "strip_accents": False, "lowercase": False}
    after = {**normalizer, "clean_text": False, "handle_chinese_chars": False}  # NFD again is a no-op here
    decompose = CodePointMap(char_tables.probe_normalizer(json.dumps({"type": "NFD"})))
    return [CodePointMap(char_tables.probe_normalizer(json.dumps(before))),
            (decompose, CodePointTable(char_tables.probe_combining_classes())),
            CodePointMap(char_tables.probe_normalizer(json.dumps(after)))]


def _vocab_list(vocab: dict[str, int]) -> list[str]:
    tokens = sorted(vocab, key=vocab.get)
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise TokenizerError("WordPiece vocab ids are not 0..n-1; cannot build an in-graph vocab lookup")
    return tokens


class WordPieceModel(TokenizerModel):
    """BertNormalizer + BertPreTokenizer + WordPiece, as TF ops."""

    def __init__(self, spec: dict):
        super().__init__(spec)
        model, normalizer, pre_tokenizer = spec["model"], spec.get("normalizer"), spec.get("pre_tokenizer")
        if model.get("type") != "WordPiece":
            raise TokenizerError(f"WordPieceLayer needs a WordPiece model, got {model.get('type')!r}")
        if normalizer is not None and normalizer.get("type") != "BertNormalizer":
            raise TokenizerError(
                f"normalizer {normalizer.get('type')!r} has no exact in-graph equivalent in tfft (supported: BertNormalizer)"
            )
        if (pre_tokenizer or {}).get("type") != "BertPreTokenizer":
            raise TokenizerError(
                f"pre-tokenizer {(pre_tokenizer or {}).get('type')!r} has no exact in-graph equivalent in tfft "
                "(supported: BertPreTokenizer)"
            )
        import tensorflow_text as tf_text

        self._normalize = None
        self._offset_stages = []  # per-character stages of the offsets path; CodePointMap | (NFD, classes)
        if normalizer is not None:
            self._normalize = CharMapper(char_tables.probe_normalizer(json.dumps(normalizer)))
            self._offset_stages = _offset_stages(normalizer)
        dropped, isolated = char_tables.probe_pre_tokenizer(json.dumps(pre_tokenizer))
        classes = {**dict.fromkeys(dropped, _DROPPED), **dict.fromkeys(isolated, _ISOLATED)}
        self._classes = CodePointTable(classes, _PLAIN)
        self._drop_pattern = char_tables.regex_class(dropped) + "+" if dropped else ""
        self._keep_pattern = char_tables.regex_class(isolated)
        self._unk_token = model["unk_token"]
        # HF counts the word-length limit in characters, tf-text in bytes: words over the limit are
        # replaced by the unknown token before the lookup, which then never hits its own byte limit.
        self._max_chars = int(model.get("max_input_chars_per_word", 100))
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=_vocab_list(model["vocab"]),
            suffix_indicator=model.get("continuing_subword_prefix", "##"),
            max_bytes_per_word=4 * self._max_chars + len(self._unk_token.encode("utf-8")),
            token_out_type=tf.int32,
            unknown_token=self._unk_token,
            no_pretokenization=True,
        )
        self._allow_offsets()

    def _tokenize(self, segments: tf.Tensor) -> tf.RaggedTensor:
        if self._normalize is not None:
            segments = self._normalize(segments)
        words = regex_split(segments, self._drop_pattern, self._keep_pattern)
        flat = words.flat_values
        too_long = tf.strings.length(flat, unit="UTF8_CHAR") > self._max_chars
        flat = tf.where(too_long, tf.constant(self._unk_token), flat)
        ids = self._wordpiece.tokenize(flat)
        return words.with_flat_values(ids).merge_dims(1, 2)

    def _tokenize_with_offsets(self, segments: tf.Tensor) -> tuple[tf.RaggedTensor, tf.Tensor]:
        # The ids path above, redone on code points so that each character keeps its source.
        chars = NormalizedChars(segments)
        for stage in self._offset_stages:
            chars = chars.decomposed(*stage) if isinstance(stage, tuple) else chars.then(stage)
        n = tf.shape(segments, out_type=tf.int64)[0]
        kind = self._classes(chars.code_points)
        plain = kind == _PLAIN
        same_row = tf.concat([[False], chars.row[1:] == chars.row[:-1]], 0)
        begins = (kind == _ISOLATED) | (plain & ~(tf.concat([[False], plain[:-1]], 0) & same_row))
        kept = kind != _DROPPED
        cps, begins = tf.boolean_mask(chars.code_points, kept), tf.boolean_mask(begins, kept)
        source, row = tf.boolean_mask(chars.source, kept), tf.boolean_mask(chars.row, kept)
        word_of = tf.cumsum(tf.cast(begins, tf.int64)) - 1  # [K] word of each kept character
        n_words = tf.reduce_sum(tf.cast(begins, tf.int64))
        by_word = tf.RaggedTensor.from_value_rowids(cps, word_of, nrows=n_words)
        words = tf.strings.unicode_encode(by_word, "UTF-8")
        word_row = tf.boolean_mask(row, begins)
        char_bytes = utf8_lengths(cps)
        byte_starts = tf.cumsum(char_bytes, exclusive=True)
        too_long = by_word.row_lengths() > self._max_chars
        ids, starts, ends = self._wordpiece.tokenize_with_offsets(tf.where(too_long, self._unk_token, words))
        token_word = ids.value_rowids()
        starts, ends = tf.cast(starts.flat_values, tf.int64), tf.cast(ends.flat_values, tf.int64)
        whole = tf.gather(too_long, token_word)  # the unknown token stands for the whole word
        word_bytes = tf.math.segment_sum(char_bytes, word_of)
        starts = tf.where(whole, tf.zeros_like(starts), starts)
        ends = tf.where(whole, tf.gather(word_bytes, token_word), ends)
        base = tf.gather(tf.boolean_mask(byte_starts, begins), token_word)
        start, end = span(tf.gather(source, chars_at_bytes(byte_starts, base + starts)),
                          tf.gather(source, chars_at_bytes(byte_starts, base + ends - 1)))
        return tokens_by_row(ids.flat_values, start, end, token_word, word_row, n)


@keras.saving.register_keras_serializable(package="tfft")
class WordPieceLayer(TokenizerLayer):
    """In-graph tokenizer for BertNormalizer + BertPreTokenizer + WordPiece (BERT, DistilBERT, ELECTRA, MiniLM).

    Example:
        layer = tfft.Tokenizer.from_pretrained("path/to/bert").as_keras_layer(max_length=128)
        batch = layer(tf.constant(["Hello world!"]), tf.constant(["Second segment"]))
    """

    model_class = WordPieceModel
