"""In-graph SentencePiece (unigram) tokenization, id-for-id equal to HF's fast tokenizer.

HF runs: normalizer steps (e.g. ALBERT's quote replacement, NFKD, accent stripping, lowercasing),
the model's precompiled charsmap, WhitespaceSplit + Metaspace, then the unigram lattice. Each is
replayed here with TF ops from HF's serialized backend, vocabulary included (so XLM-R's fairseq id
offset needs no remapping and a directory with only tokenizer.json works).

tensorflow-text's SentencepieceTokenizer is not used: run on the same model it differs from HF on
equal-score segmentations (it sums scores in float32, HF in float64: "!!!!!", "000"), on
characters HF counts as whitespace but SentencePiece does not (U+0085), and on grapheme clusters
the charsmap composes by longest match while HF maps them char by char (stacked accents,
conjoining Hangul jamo). See `precompiled_charsmap` and `unigram_lattice`.

For offsets every step runs on code points aligned with original characters the way HF's
NormalizedString aligns them, quirks included: Replace aligns its content with the match's last
character, the charsmap shifts what follows a removal at the very start, NFD aligns reordered marks
by position (see `char_offsets` and `PrecompiledNormalizer.align`). Each Metaspace piece is a word.
"""

from __future__ import annotations

import base64
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
    exclusive_cumsum_in_rows,
    positions_in_rows,
    span,
    tokens_by_row,
)
from tfft.tokenizers.precompiled_charsmap import PrecompiledNormalizer
from tfft.tokenizers.tokenizer_layer import TokenizerLayer, TokenizerModel, _literal, regex_split
from tfft.tokenizers.unigram_lattice import UnigramLattice

METASPACE = "\u2581"

_PER_CHAR = {"NFD", "NFKD", "StripAccents", "Lowercase"}


def _rewrite(text: str) -> str:
    return text.replace("\\", "\\\\")


class _Steps(tf.Module):
    """The HF normalizer steps before the precompiled charsmap, as TF string ops."""

    def __init__(self, steps: list[dict]):
        super().__init__()
        self._ops = []  # ("replace", pattern, rewrite) | ("icu", form) | ("chars", CharMapper)
        # The same on characters with sources: ("replace", pattern, content) | ("chars", CodePointMap)
        # | ("decompose", CodePointMap, CodePointTable) (see NormalizedChars.decomposed).
        self._offset_ops = []
        i = 0
        while i < len(steps):
            step = steps[i]
            kind = step["type"]
            if kind == "Replace":
                pattern = step["pattern"]
                if "String" not in pattern:
                    raise TokenizerError(f"normalizer Replace with pattern {pattern} has no exact in-graph equivalent")
                self._ops.append(("replace", _literal(pattern["String"]), _rewrite(step["content"])))
                self._offset_ops.append(("replace", pattern["String"], step["content"]))
                i += 1
            elif kind in _PER_CHAR:
                group = []
                while i < len(steps) and steps[i]["type"] in _PER_CHAR:
                    group.append(steps[i])
                    i += 1
                kinds = [s["type"] for s in group]
                decompose = [k for k in kinds if k in ("NFD", "NFKD")]
                # Per-character replay is exact unless decomposition must also reorder combining
                # marks; stripping every mark afterwards makes the order moot, otherwise ICU reorders
                # first (only valid when nothing in the group runs before the decomposition).
                if decompose and "StripAccents" not in kinds[kinds.index(decompose[0]):]:
                    if kinds[0] != decompose[0]:
                        raise TokenizerError(f"normalizer steps {kinds} have no exact in-graph equivalent in tfft")
                    self._ops.append(("icu", decompose[0]))
                    self._offset_ops.append(("decompose", CodePointMap(char_tables.probe_normalizer(json.dumps(
                        {"type": decompose[0]}))), CodePointTable(char_tables.probe_combining_classes())))
                char_map = char_tables.probe_normalizer(json.dumps({"type": "Sequence", "normalizers": group}))
                self._ops.append(("chars", CharMapper(char_map)))
                self._offset_ops.append(("chars", CodePointMap(char_map)))
            else:
                raise TokenizerError(f"normalizer step {kind!r} has no exact in-graph equivalent in tfft")
        # Tracked for SavedModel (tuples holding strings are not).
        self._mappers = [m for op in self._ops + self._offset_ops if op[0] in ("chars", "decompose") for m in op[1:]]

    def __call__(self, texts: tf.Tensor) -> tf.Tensor:
        import tensorflow_text as tf_text

        for op in self._ops:
            if op[0] == "replace":
                texts = tf.strings.regex_replace(texts, op[1], op[2])
            elif op[0] == "icu":
                texts = tf_text.normalize_utf8(texts, op[1])
            else:
                texts = op[1](texts)
        return texts

    def align(self, chars: NormalizedChars) -> NormalizedChars:
        """The steps on characters with sources, aligned as HF aligns them."""
        for op in self._offset_ops:
            if op[0] == "replace":
                chars = chars.replace_literal(op[1], op[2])
            elif op[0] == "decompose":
                chars = chars.decomposed(op[1], op[2])
            else:
                chars = chars.then(op[1])
        return chars


def _split_normalizer(normalizer: dict | None) -> tuple[list[dict], bytes]:
    """(steps before the precompiled charsmap, the charsmap) of an HF normalizer."""
    if normalizer is None:
        return [], b""
    steps = normalizer["normalizers"] if normalizer["type"] == "Sequence" else [normalizer]
    kinds = [s["type"] for s in steps]
    if "Precompiled" not in kinds:
        return steps, b""
    at = kinds.index("Precompiled")
    if at != len(steps) - 1:
        raise TokenizerError(
            f"normalizer steps {kinds[at + 1:]} after the precompiled charsmap have no exact in-graph equivalent"
        )
    return steps[:at], base64.b64decode(steps[at]["precompiled_charsmap"] or "")


def _check_pre_tokenizer(pre_tokenizer: dict | None) -> bool:
    """Whether each word gets a "▁" prefix; raises unless the pre-tokenizer is WhitespaceSplit + Metaspace."""
    steps = (pre_tokenizer or {}).get("pretokenizers") or [pre_tokenizer or {}]
    kinds = [s.get("type") for s in steps]
    meta = steps[-1]
    if kinds != ["WhitespaceSplit", "Metaspace"] or meta.get("replacement") != METASPACE or not meta.get("split", True):
        raise TokenizerError(
            f"pre-tokenizer {kinds} has no exact in-graph equivalent in tfft (supported: WhitespaceSplit + Metaspace)"
        )
    scheme = meta.get("prepend_scheme", "always")
    if scheme not in ("always", "never"):
        raise TokenizerError(f"Metaspace prepend_scheme={scheme!r} has no exact in-graph equivalent in tfft")
    return scheme == "always"


class SentencePieceModel(TokenizerModel):
    """HF normalizer steps + precompiled charsmap + WhitespaceSplit/Metaspace + unigram lattice, as TF ops."""

    def __init__(self, spec: dict):
        super().__init__(spec)
        model = spec["model"]
        if model.get("type") != "Unigram":
            raise TokenizerError(f"SentencePieceLayer needs a Unigram model, got {model.get('type')!r}")
        if model.get("byte_fallback"):
            raise TokenizerError("unigram byte_fallback has no exact in-graph equivalent in tfft")
        if model.get("unk_id") is None:
            raise TokenizerError("unigram model without an unknown piece has no in-graph equivalent in tfft")
        steps, charsmap = _split_normalizer(spec.get("normalizer"))
        self._prepend = _check_pre_tokenizer(spec.get("pre_tokenizer"))
        self._steps = _Steps(steps)
        self._charsmap = PrecompiledNormalizer(charsmap) if charsmap else None
        self._whitespace = char_tables.regex_class(char_tables.WHITESPACE) + "+"
        self._lattice = UnigramLattice([(p, float(s)) for p, s in model["vocab"]], model["unk_id"])
        self._whitespace_table = CodePointTable({c: 1 for c in char_tables.WHITESPACE})
        self._allow_offsets()

    def _tokenize(self, segments: tf.Tensor) -> tf.RaggedTensor:
        texts = self._steps(segments)
        if self._charsmap is not None:
            texts = self._charsmap(texts)
        words = regex_split(texts, drop=self._whitespace)  # WhitespaceSplit
        flat = words.flat_values
        if self._prepend:  # Metaspace, prepend_scheme="always"
            flat = tf.where(tf.strings.regex_full_match(flat, METASPACE + ".*"), flat, METASPACE + flat)
        pieces = regex_split(flat, keep=METASPACE + "[^" + METASPACE + "]*")  # split, merged with next
        ids = self._lattice(pieces.flat_values)
        return words.with_flat_values(pieces.with_flat_values(ids).merge_dims(1, 2)).merge_dims(1, 2)

    def _tokenize_with_offsets(self, segments: tf.Tensor) -> tuple[tf.RaggedTensor, tf.Tensor]:
        # The ids path above on code points, each aligned with an original character as HF aligns it.
        chars = self._steps.align(NormalizedChars(segments))
        if self._charsmap is not None:
            chars = self._charsmap.align(chars)
        kept = self._whitespace_table(chars.code_points) == 0  # WhitespaceSplit
        previous_kept = tf.concat([[False], kept[:-1] & (chars.row[1:] == chars.row[:-1])], 0)
        word_begins = tf.boolean_mask(~previous_kept, kept)
        cps, row = tf.boolean_mask(chars.code_points, kept), tf.boolean_mask(chars.row, kept)
        source = tf.boolean_mask(chars.source, kept)
        is_meta = cps == ord(METASPACE)
        if self._prepend:  # Metaspace prepends "▁", aligned with the word's first character
            add = word_begins & ~is_meta
            width = 1 + tf.cast(add, tf.int64)
            first = positions_in_rows(tf.RaggedTensor.from_row_lengths(tf.repeat(cps, width), width)) == 0
            cps = tf.where(tf.repeat(add, width) & first, ord(METASPACE), tf.repeat(cps, width))
            word_begins = tf.repeat(word_begins, width) & first
            row, source = tf.repeat(row, width), tf.repeat(source, width)
            is_meta = cps == ord(METASPACE)
        begins = word_begins | is_meta  # Metaspace split, merged with the next piece
        # Each piece is one of HF's words; the lattice gives each token's length in characters.
        piece_of = tf.cumsum(tf.cast(begins, tf.int64)) - 1
        by_piece = tf.RaggedTensor.from_value_rowids(cps, piece_of, nrows=tf.reduce_sum(tf.cast(begins, tf.int64)))
        found = self._lattice(tf.strings.unicode_encode(by_piece, "UTF-8"), with_lengths=True)
        token_piece, lengths = found.value_rowids(), tf.cast(found.flat_values[:, 1], tf.int64)
        first = tf.gather(by_piece.row_starts(), token_piece) + exclusive_cumsum_in_rows(lengths, token_piece,
                                                                                         found.row_starts())
        start, end = span(tf.gather(source, first), tf.gather(source, first + lengths - 1))
        return tokens_by_row(found.flat_values[:, 0], start, end, token_piece, tf.boolean_mask(row, begins), chars.n)


@keras.saving.register_keras_serializable(package="tfft")
class SentencePieceLayer(TokenizerLayer):
    """In-graph tokenizer for SentencePiece unigram models (XLM-R, ALBERT), built from HF's backend.

    Example:
        layer = tfft.Tokenizer.from_pretrained("path/to/xlm-roberta").as_keras_layer(max_length=256)
        batch = layer(tf.constant(["Bonjour le monde", "你好"]))
    """

    model_class = SentencePieceModel
