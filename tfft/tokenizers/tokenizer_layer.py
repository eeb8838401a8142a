"""The part every in-graph tokenizer layer shares: added tokens, truncation, special tokens, padding.

A subclass only turns text segments into token ids (`_tokenize`); this base reproduces what HF's
`tokenizers` does around its model, read from the serialized backend (`tokenizer.json` layout):
added tokens are cut out of the raw text first, sequences are truncated like `truncation=True,
max_length=N` (longest_first for pairs), the post-processor template adds the special tokens and
token type ids, and rows are padded to the longest in the batch.
"""

from __future__ import annotations

import functools
import json

import keras
import tensorflow as tf

from tfft.errors import TokenizerError
from tfft.tokenizers import char_tables
from tfft.tokenizers.char_offsets import exclusive_cumsum_in_rows


def _literal(text: str) -> str:
    return "".join(f"\\x{{{ord(c):x}}}" for c in text)


# A byte that valid UTF-8 never holds and RE2 never matches: marks split points. (tf-text's
# regex_split would do, but it stops at the first NUL byte of its input.)
_CUT = b"\xff"


def regex_split(texts: tf.Tensor, drop: str = "", keep: str = "") -> tf.RaggedTensor:
    """Split a 1-D tf.string tensor where `drop` matches (removed) and `keep` matches (kept as pieces).

    Empty pieces are removed. Returns [n, (pieces)].
    """
    if drop:
        texts = tf.strings.regex_replace(texts, drop, _CUT)
    if keep:
        texts = tf.strings.regex_replace(texts, keep, _CUT + b"\\0" + _CUT)
    pieces = tf.strings.split(texts, sep=_CUT)
    return tf.ragged.boolean_mask(pieces, tf.strings.length(pieces) > 0)


def _template(post_processor: dict | None) -> dict[str, list[tuple[str | list[int], int]]]:
    """{"single": [...], "pair": [...]}; items are ("A" | "B" | special ids, type id)."""
    kind = (post_processor or {}).get("type")
    if kind == "TemplateProcessing":
        specials = post_processor["special_tokens"]
        out = {}
        for key in ("single", "pair"):
            items = []
            for item in post_processor[key]:
                if "Sequence" in item:
                    items.append((item["Sequence"]["id"], item["Sequence"]["type_id"]))
                else:
                    ids = specials[item["SpecialToken"]["id"]]["ids"]
                    items.append((list(ids), item["SpecialToken"]["type_id"]))
            out[key] = items
        return out
    if kind == "BertProcessing":
        cls, sep = [post_processor["cls"][1]], [post_processor["sep"][1]]
        return {"single": [(cls, 0), ("A", 0), (sep, 0)], "pair": [(cls, 0), ("A", 0), (sep, 0), ("B", 1), (sep, 1)]}
    if kind == "RobertaProcessing":
        cls, sep = [post_processor["cls"][1]], [post_processor["sep"][1]]
        return {"single": [(cls, 0), ("A", 0), (sep, 0)], "pair": [(cls, 0), ("A", 0), (sep, 0), (sep, 0), ("B", 0), (sep, 0)]}
    raise TokenizerError(f"post-processor {kind!r} has no in-graph equivalent in tfft (supported: "
                         "TemplateProcessing, BertProcessing, RobertaProcessing)")


def truncate_pair(len_a: tf.Tensor, len_b: tf.Tensor, budget: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Lengths to keep under HF's longest_first strategy (tokenizers' truncate_encodings)."""
    budget = tf.constant(budget, len_a.dtype)
    shorter = tf.minimum(len_a, len_b)
    keep_long = tf.where(shorter > budget, shorter, tf.maximum(shorter, budget - shorter))
    over = shorter + keep_long > budget
    keep_short = tf.where(over, budget // 2, shorter)
    keep_long = tf.where(over, budget // 2 + budget % 2, keep_long)
    swap = len_a > len_b
    keep_a = tf.where(swap, keep_long, keep_short)
    keep_b = tf.where(swap, keep_short, keep_long)
    fits = len_a + len_b <= budget
    return tf.where(fits, len_a, tf.minimum(len_a, keep_a)), tf.where(fits, len_b, tf.minimum(len_b, keep_b))


# Offset outputs of `TokenizerLayer(..., return_offsets=True)`: (name, padding value), in column order.
_OFFSET_OUTPUTS = (("offset_starts", 0), ("offset_ends", 0), ("word_ids", -1), ("sequence_ids", -1))


def _keep_first(tokens: tf.RaggedTensor, keep: tf.Tensor) -> tf.RaggedTensor:
    positions = tf.ragged.range(tokens.row_lengths())
    return tf.ragged.boolean_mask(tokens, positions < tf.expand_dims(keep, 1))


class TokenizerModel(tf.Module):
    """Text segments (holding no added token) -> token ids; subclassed per model type.

    Instances are shared by all layers built from the same tokenizer (see `_shared_model`), so
    lookup tables are built and `tokenize` is traced once per process, not once per max_length.
    A subclass whose offsets equal HF's implements `_tokenize_with_offsets` and calls `_allow_offsets`.
    """

    supports_offsets = False

    def __init__(self, spec: dict):
        super().__init__()
        # Traced once per model (a class-level tf.function would count every model's trace as a
        # retrace). Control flow is explicit (tf.while_loop, static Python loops): no autograph.
        self.tokenize = tf.function(self._tokenize, input_signature=[tf.TensorSpec([None], tf.string)],
                                    autograph=False)

    def _allow_offsets(self) -> None:
        """Called by a subclass whose `_tokenize_with_offsets` equals HF's for this tokenizer."""
        self.supports_offsets = True
        # Hidden from SavedModels behind a plain callable: they would trace it (with a signature) or
        # keep every trace made so far in any process-wide context (without), while an export that
        # asks for offsets holds the trace it calls anyway. Shapes relax to [None] on the second call.
        function = tf.function(self._tokenize_with_offsets, reduce_retracing=True, autograph=False)
        self.tokenize_with_offsets = lambda segments: function(segments)

    def _tokenize(self, segments: tf.Tensor) -> tf.RaggedTensor:
        """int32 token ids [n, (tokens)] of a 1-D batch of text."""
        raise NotImplementedError

    def _tokenize_with_offsets(self, segments: tf.Tensor) -> tuple[tf.RaggedTensor, tf.Tensor]:
        """(tokens, words): int32 [n, (tokens), 4] rows of (id, start, end, word) and int32 [n] word counts.

        start/end are HF's offsets in code points into the segment, word is HF's word index within
        the segment, and words counts the segment's pre-tokenizer words (some may yield no token).
        The ids equal `_tokenize`'s.
        """
        raise NotImplementedError


@functools.lru_cache(maxsize=16)
def _shared_model(model_cls: type, tokenizer_json: str) -> TokenizerModel:
    with tf.init_scope():
        return model_cls(json.loads(tokenizer_json))


class TokenizerLayer(keras.layers.Layer):
    """Base of the in-graph tokenizers: `layer(texts, text_pairs=None, return_offsets=False)` on tf.string.

    Returns {"input_ids", "attention_mask", "token_type_ids"}: int32 [batch, longest row] (or
    [longest] for a scalar string), padded with `pad_token_id`, truncated like HF's
    `truncation=True, max_length=max_length` when `max_length` is set. Works eagerly, in
    tf.function, in `tf.data.Dataset.map` and in a SavedModel (load it after `import tensorflow_text`).
    Built by `Tokenizer.as_keras_layer`; `tokenizer_json` is HF's serialized backend tokenizer.

    With `return_offsets=True` (where `supports_offsets`; TokenizerError otherwise) the dict also
    holds, in the same layout, what HF's `return_offsets_mapping=True`, `word_ids()` and
    `sequence_ids()` give: "offset_starts", "offset_ends" (code point offsets into the token's own
    raw text or text pair; 0 for special and padding tokens), "word_ids" (the pre-tokenizer word
    within its text) and "sequence_ids" (0 or 1); both -1 for special and padding tokens.

    Example:
        out = layer(tf.constant(["New York"]), return_offsets=True)   # BERT
        out["offset_starts"], out["offset_ends"], out["word_ids"]     # [[0, 0, 4, 0]], [[0, 3, 8, 0]], [[-1, 0, 1, -1]]
    """

    def __init__(self, tokenizer_json: str, pad_token_id: int, max_length: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self._convert_input_args = False  # keep tf.string tensors as they are
        self._allow_non_tensor_positional_args = True
        self.tokenizer_json = tokenizer_json
        self.pad_token_id = int(pad_token_id)
        self.max_length = None if max_length is None else int(max_length)
        spec = json.loads(tokenizer_json)
        self._templates = _template(spec.get("post_processor"))
        self._n_special = {k: sum(len(x) for x, _ in v if isinstance(x, list)) for k, v in self._templates.items()}
        with tf.init_scope():
            self._init_added_tokens(spec.get("added_tokens") or [])
        self._model = _shared_model(self.model_class, tokenizer_json)
        self.built = True

    model_class: type = TokenizerModel  # set by subclasses

    @property
    def supports_offsets(self) -> bool:
        """Whether `layer(..., return_offsets=True)` works (it raises TokenizerError otherwise)."""
        return self._model.supports_offsets

    def _tokenize(self, segments: tf.Tensor) -> tf.RaggedTensor:
        return self._model.tokenize(segments)

    # -- added tokens -------------------------------------------------------------------------
    def _init_added_tokens(self, added_tokens: list[dict]) -> None:
        whitespace = char_tables.regex_class(char_tables.WHITESPACE)
        patterns, table = [], {}
        for token in sorted(added_tokens, key=lambda t: -len(t["content"])):
            if not token["content"]:
                continue
            if token.get("normalized") or token.get("single_word"):
                raise TokenizerError(
                    f"added token {token['content']!r} is matched after normalization or as a single word; "
                    "tfft's in-graph layers only split raw-text added tokens exactly like HF"
                )
            patterns.append((whitespace + "*" if token.get("lstrip") else "") + _literal(token["content"])
                            + (whitespace + "*" if token.get("rstrip") else ""))
            table[token["content"]] = token["id"]
        self._added_pattern = "|".join(patterns)
        self._strip_pattern = f"^{whitespace}+|{whitespace}+$"
        self._added_table = None
        if table:
            self._added_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(list(table)), tf.constant(list(table.values()), tf.int32)
                ),
                default_value=-1,
            )

    def _encode(self, texts: tf.Tensor, with_offsets: bool = False) -> tf.RaggedTensor:
        """Token ids [n, (t)] of a 1-D batch of raw texts, added tokens included.

        with_offsets: int32 [n, (t), 4] rows of (id, start, end, word) instead (see TokenizerModel).
        """
        if self._added_table is None:
            return self._model.tokenize_with_offsets(texts)[0] if with_offsets else self._tokenize(texts)
        segments = regex_split(texts, keep=self._added_pattern)
        flat = segments.flat_values
        added_ids = self._added_table.lookup(tf.strings.regex_replace(flat, self._strip_pattern, ""))
        is_added = added_ids >= 0
        if with_offsets:
            return self._join_segments(segments, added_ids)
        ordinary = self._tokenize(tf.where(is_added, tf.constant(""), flat))
        added = tf.ragged.boolean_mask(tf.expand_dims(added_ids, 1), tf.expand_dims(is_added, 1))
        ids = tf.concat([ordinary, added], axis=1)  # each row holds one of the two
        return segments.with_flat_values(ids).merge_dims(1, 2)

    def _join_segments(self, segments: tf.RaggedTensor, added_ids: tf.Tensor) -> tf.RaggedTensor:
        """Tokens with offsets of texts cut into segments: offsets and words move to the texts' frame.

        An added token is one word and its offsets cover its whole segment (lstrip/rstrip
        whitespace included), as in HF.
        """
        flat = segments.flat_values
        is_added = added_ids >= 0
        ordinary, words = self._model.tokenize_with_offsets(tf.where(is_added, tf.constant(""), flat))
        lengths = tf.strings.length(flat, unit="UTF8_CHAR")
        zeros = tf.zeros_like(lengths)
        added = tf.stack([added_ids, zeros, lengths, zeros], axis=1)
        added = tf.ragged.boolean_mask(tf.expand_dims(added, 1), tf.expand_dims(is_added, 1))
        tokens = tf.concat([ordinary, added], axis=1)  # each row holds one of the two
        words = tf.where(is_added, tf.ones_like(words), words)
        rows, starts = segments.value_rowids(), segments.row_starts()
        shift = tf.stack([zeros, *[exclusive_cumsum_in_rows(lengths, rows, starts)] * 2,
                          exclusive_cumsum_in_rows(words, rows, starts)], axis=1)
        tokens = tokens.with_flat_values(tokens.flat_values + tf.gather(shift, tokens.value_rowids()))
        return segments.with_flat_values(tokens).merge_dims(1, 2)

    # -- call ---------------------------------------------------------------------------------
    def call(self, texts, text_pairs=None, return_offsets=False):
        texts = tf.convert_to_tensor(texts, tf.string)
        rank = texts.shape.rank
        if rank not in (0, 1):
            raise TokenizerError(f"texts must be a tf.string scalar or vector [batch], got shape {texts.shape}")
        if return_offsets and not self._model.supports_offsets:
            raise TokenizerError(f"{type(self).__name__} has no in-graph offsets equal to HF's for this tokenizer "
                                 f"({type(self._model).__name__}); call it with return_offsets=False and take "
                                 "offsets from Tokenizer.__call__(..., return_offsets=True, return_words=True)")
        texts = tf.reshape(texts, [-1])
        a = self._encode(texts, return_offsets)
        b = None
        if text_pairs is not None:
            text_pairs = tf.convert_to_tensor(text_pairs, tf.string)
            if text_pairs.shape.rank != rank:
                raise TokenizerError(f"text_pairs has shape {text_pairs.shape} but texts has rank {rank}")
            b = self._encode(tf.reshape(text_pairs, [-1]), return_offsets)
        key = "single" if b is None else "pair"
        if self.max_length is not None:
            budget = self.max_length - self._n_special[key]
            if budget < 0:
                raise TokenizerError(
                    f"max_length={self.max_length} cannot hold the {self._n_special[key]} special tokens "
                    f"of a {key} sequence"
                )
            if b is None:
                a = _keep_first(a, tf.minimum(a.row_lengths(), budget))
            else:
                keep_a, keep_b = truncate_pair(a.row_lengths(), b.row_lengths(), budget)
                a, b = _keep_first(a, keep_a), _keep_first(b, keep_b)
        tokens, types = self._assemble(tf.shape(texts, out_type=tf.int64)[0], key, a, b, return_offsets)
        ids = tokens if not return_offsets else tokens.with_flat_values(tokens.flat_values[:, 0])
        out = {
            "input_ids": ids.to_tensor(default_value=self.pad_token_id),
            "attention_mask": tf.ones_like(ids).to_tensor(default_value=0),
            "token_type_ids": types.to_tensor(default_value=0),
        }
        if return_offsets:
            for column, (name, pad) in enumerate(_OFFSET_OUTPUTS, start=1):
                out[name] = tokens.with_flat_values(tokens.flat_values[:, column]).to_tensor(default_value=pad)
        if rank == 0:
            out = {k: v[0] for k, v in out.items()}
        return out

    def _assemble(self, batch, key, a, b, with_offsets):
        """(tokens, token types) of whole rows: the post-processor template filled with a and b.

        with_offsets: tokens are [batch, (t), 5] rows of (id, start, end, word, sequence); special
        tokens get (id, 0, 0, -1, -1) as in HF.
        """
        tokens, types = [], []
        for item, type_id in self._templates[key]:
            if isinstance(item, str):
                part = {"A": a, "B": b}[item]
                if with_offsets:
                    sequence = tf.fill(tf.shape(part.flat_values[:, :1]), 0 if item == "A" else 1)
                    part = part.with_flat_values(tf.concat([part.flat_values, sequence], axis=1))
            else:
                rows = [[i, 0, 0, -1, -1] for i in item] if with_offsets else item
                multiples = [batch, 1, 1] if with_offsets else [batch, 1]
                part = tf.RaggedTensor.from_tensor(tf.tile(tf.constant([rows], tf.int32), tf.stack(multiples)))
            tokens.append(part)
            ids = part.with_flat_values(part.flat_values[:, 0]) if with_offsets else part
            types.append(tf.ones_like(ids) * type_id)
        return tf.concat(tokens, axis=1), tf.concat(types, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(tokenizer_json=self.tokenizer_json, pad_token_id=self.pad_token_id, max_length=self.max_length)
        return config
