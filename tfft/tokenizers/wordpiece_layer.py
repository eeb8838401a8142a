"""In-graph BERT-style WordPiece tokenization, id-for-id equal to HF's fast tokenizer.

HF's pipeline is BertNormalizer -> BertPreTokenizer -> WordPiece. tensorflow-text's BertTokenizer
is close but not equal: it case-folds with NFKC (so "…", "ﬁ", "²" or full-width letters change),
uses RE2's Unicode tables instead of HF's, and counts the word-length limit in bytes instead of
characters. So the normalizer and the pre-tokenizer are replayed from tables probed out of HF
(see `char_tables`), and only the vocabulary lookup is tensorflow-text's FastWordpieceTokenizer.
"""

from __future__ import annotations

import json

import keras
import tensorflow as tf

from tfft.errors import TokenizerError
from tfft.tokenizers import char_tables
from tfft.tokenizers.char_mapper import CharMapper
from tfft.tokenizers.tokenizer_layer import TokenizerLayer, TokenizerModel, regex_split


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
        if normalizer is not None:
            self._normalize = CharMapper(char_tables.probe_normalizer(json.dumps(normalizer)))
        dropped, isolated = char_tables.probe_pre_tokenizer(json.dumps(pre_tokenizer))
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

    def _tokenize(self, segments: tf.Tensor) -> tf.RaggedTensor:
        if self._normalize is not None:
            segments = self._normalize(segments)
        words = regex_split(segments, self._drop_pattern, self._keep_pattern)
        flat = words.flat_values
        too_long = tf.strings.length(flat, unit="UTF8_CHAR") > self._max_chars
        flat = tf.where(too_long, tf.constant(self._unk_token), flat)
        ids = self._wordpiece.tokenize(flat)
        return words.with_flat_values(ids).merge_dims(1, 2)


@keras.saving.register_keras_serializable(package="tfft")
class WordPieceLayer(TokenizerLayer):
    """In-graph tokenizer for BertNormalizer + BertPreTokenizer + WordPiece (BERT, DistilBERT, ELECTRA, MiniLM).

    Example:
        layer = tfft.Tokenizer.from_pretrained("path/to/bert").as_keras_layer(max_length=128)
        batch = layer(tf.constant(["Hello world!"]), tf.constant(["Second segment"]))
    """

    model_class = WordPieceModel
