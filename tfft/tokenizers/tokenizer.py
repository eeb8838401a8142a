"""`Tokenizer`: HF's fast tokenizer on the host, and an id-for-id equal in-graph Keras layer."""

from __future__ import annotations

import collections
import json
import os
import pathlib

import numpy as np

from tfft.errors import TfftError, TokenizerError

# Files from which transformers can build a fast tokenizer; one of them must be present.
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model",
                    "tokenizer.model")
_KINDS = {"WordPiece": "wordpiece", "Unigram": "sentencepiece", "BPE": "bpe", "WordLevel": "wordlevel"}


def _auto_tokenizer():
    from tfft._transformers import import_transformers

    return import_transformers().AutoTokenizer


def _resolve_directory(name_or_path: str | os.PathLike) -> pathlib.Path:
    from tfft.hub import resolve_pretrained_dir

    try:
        return pathlib.Path(resolve_pretrained_dir(name_or_path))
    except TfftError as err:
        raise TokenizerError(f"cannot find tokenizer files for {str(name_or_path)!r}: {err}") from err


def _trims_offsets(post_processor: dict | None) -> bool:
    """Whether a post-processor trims spaces off token offsets (byte-level BPE's trim_offsets)."""
    steps = (post_processor or {}).get("processors") or [post_processor or {}]
    return any(s.get("type") in ("RobertaProcessing", "ByteLevel") and s.get("trim_offsets") for s in steps)


def _token_spans(encoding) -> dict[int, tuple[int, int]]:
    """{word: (start of its first token, end of its last token)} of an HF Encoding."""
    spans = {}
    for word, (start, end) in zip(encoding.word_ids, encoding.offsets):
        if word is not None:
            spans[word] = (spans.get(word, (start, end))[0], end)
    return spans


class Tokenizer:
    """HF fast tokenizer wrapper giving int32 numpy batches, and in-graph Keras layers built from the same files.

    Example:
        tok = Tokenizer.from_pretrained("path/to/minilm")
        batch = tok(["How are you?"], ["Fine."], max_length=128)      # dict of int32 numpy arrays
        layer = tok.as_keras_layer(max_length=128)                     # same ids, as a TF graph
        batch = layer(tf.constant(["How are you?"]), tf.constant(["Fine."]))
    """

    def __init__(self, hf_tokenizer, directory: pathlib.Path | None = None):
        if not getattr(hf_tokenizer, "is_fast", False):
            raise TokenizerError(f"{type(hf_tokenizer).__name__} is not a fast (tokenizers-backed) tokenizer")
        self.hf_tokenizer = hf_tokenizer
        self.directory = directory
        # tokenizer.json may fix its own padding/truncation (all-MiniLM-L6-v2's is 128); tfft pads to
        # the longest row and truncates only when asked, so the backend's defaults are dropped.
        hf_tokenizer.backend_tokenizer.no_padding()
        hf_tokenizer.backend_tokenizer.no_truncation()

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **hf_kwargs) -> Tokenizer:
        """Load from a local directory in the HF layout (or a hub id, via `tfft.hub`).

        Extra keyword arguments go to `transformers.AutoTokenizer.from_pretrained`
        (e.g. `strip_accents=False`).
        """
        directory = _resolve_directory(name_or_path)
        if not any((directory / name).is_file() for name in _TOKENIZER_FILES):
            raise TokenizerError(
                f"no tokenizer files in {str(directory)!r}: expected one of {', '.join(_TOKENIZER_FILES)}"
            )
        try:
            hf_tokenizer = _auto_tokenizer().from_pretrained(str(directory), local_files_only=True, **hf_kwargs)
        except Exception as err:  # broken or unsupported files: transformers and tokenizers raise all kinds
            raise TokenizerError(f"cannot load the tokenizer in {str(directory)!r}: {err}") from err
        return cls(hf_tokenizer, directory)

    # -- properties ---------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """"wordpiece", "sentencepiece" (unigram) or "bpe"."""
        model_type = type(self.hf_tokenizer.backend_tokenizer.model).__name__
        return _KINDS.get(model_type, model_type.lower())

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (the embedding table must have at least this many rows)."""
        return len(self.hf_tokenizer)

    pad_token_id = property(lambda self: self.hf_tokenizer.pad_token_id, doc="Padding id (None when absent).")
    cls_token_id = property(lambda self: self.hf_tokenizer.cls_token_id, doc="[CLS]/<s> id (None when absent).")
    sep_token_id = property(lambda self: self.hf_tokenizer.sep_token_id, doc="[SEP]/</s> id (None when absent).")
    mask_token_id = property(lambda self: self.hf_tokenizer.mask_token_id, doc="Mask id (None when absent).")
    unk_token_id = property(lambda self: self.hf_tokenizer.unk_token_id, doc="Unknown-token id (None when absent).")

    def num_special_tokens(self, pair: bool = False) -> int:
        """Special tokens added around one sequence (or a pair); max_length must leave room for them."""
        return self.hf_tokenizer.num_special_tokens_to_add(pair=pair)

    # -- host tokenization --------------------------------------------------------------------
    def __call__(self, texts, text_pairs=None, max_length: int | None = None, return_offsets: bool = False,
                 return_words: bool = False):
        """Tokenize a batch of strings (and optional second segments) into int32 numpy arrays.

        Returns {"input_ids", "attention_mask", "token_type_ids"} of shape [batch, longest row], plus
        "offsets" [batch, longest row, 2] (character start, end in the token's own text; (0, 0) for
        special and padding tokens) when `return_offsets`, and "word_ids", "sequence_ids"
        [batch, longest row] (HF's `word_ids()` and `sequence_ids()`; -1 for special and padding
        tokens) when `return_words`. Sequences are truncated like HF's `truncation=True,
        max_length=max_length` (longest_first for pairs) only when `max_length` is given.

        Example:
            batch = tok(["New York"], return_offsets=True, return_words=True)
            batch["word_ids"]  # [[-1, 0, 1, -1]]; batch["offsets"][0, 2] == (4, 8)
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        if text_pairs is not None:
            text_pairs = [text_pairs] if isinstance(text_pairs, str) else list(text_pairs)
            if len(text_pairs) != len(texts):
                raise TokenizerError(f"got {len(texts)} texts but {len(text_pairs)} text_pairs")
        self._check_texts(texts + (text_pairs or []))
        if max_length is not None:
            n_special = self.num_special_tokens(pair=text_pairs is not None)
            if max_length < n_special:
                kind = "pair" if text_pairs is not None else "single"
                raise TokenizerError(
                    f"max_length={max_length} cannot hold the {n_special} special tokens of a {kind} sequence"
                )
        names = ["input_ids", "attention_mask", "token_type_ids"] + (["offsets"] if return_offsets else [])
        names += ["word_ids", "sequence_ids"] if return_words else []
        if not texts:
            return {n: np.zeros((0, 0, 2) if n == "offsets" else (0, 0), np.int32) for n in names}
        enc = self.hf_tokenizer(
            texts,
            text_pairs,
            padding="longest",
            truncation=max_length is not None,
            max_length=max_length,
            return_attention_mask=True,
            return_token_type_ids=True,
            return_offsets_mapping=return_offsets,
        )  # padded python lists: converting them here is faster than return_tensors="np"
        out = {n: np.asarray(enc["offset_mapping" if n == "offsets" else n], dtype=np.int32)
               for n in names if n not in ("word_ids", "sequence_ids")}
        if return_offsets and out["offsets"].ndim != 3:  # every row empty: shape [batch, 0]
            out["offsets"] = out["offsets"].reshape(len(texts), 0, 2)
        if return_words:
            for name, rows in (("word_ids", enc.word_ids), ("sequence_ids", enc.sequence_ids)):
                table = [[-1 if w is None else w for w in rows(i)] for i in range(len(texts))]
                out[name] = np.asarray(table, np.int32).reshape(len(texts), -1)
        return out

    def split_words(self, texts) -> list[list[tuple[int, int]]]:
        """The words `word_ids` count, as (start, end) character spans of each raw text.

        A word is one split of HF's pre-tokenizer run on the normalized text (mapped back to the
        original characters, as HF maps offsets), or one added token (its span includes the
        whitespace an lstrip/rstrip token takes). Word i spans from the first to the last token
        whose word id is i in `tok(text, return_words=True)` (for byte-level BPE, whose
        post-processor trims spaces off each token's offsets, the span is taken from those tokens).
        A word that yields no token keeps its place in the list and no token points to it;
        WordPiece, Unigram and BPE models give every word at least one token (the unknown one, at
        worst), so every word is pointed to unless truncation cut it.

        Example:
            tok.split_words(["New York!"])  # [[(0, 3), (4, 8), (8, 9)]] for BERT
        """
        from tokenizers import PreTokenizedString

        texts = [texts] if isinstance(texts, str) else list(texts)
        self._check_texts(texts)
        backend = self.hf_tokenizer.backend_tokenizer
        added = backend.get_added_tokens_decoder()
        trim = _trims_offsets(json.loads(backend.to_str()).get("post_processor"))

        def words_of(text: str, at: int) -> list[tuple[int, int]]:
            pretokenized = PreTokenizedString(text)
            if backend.normalizer is not None:
                pretokenized.normalize(backend.normalizer.normalize)
            if backend.pre_tokenizer is not None:
                backend.pre_tokenizer.pre_tokenize(pretokenized)
            splits = pretokenized.get_splits(offset_referential="original", offset_type="char")
            return [(at + start, at + end) for piece, (start, end), _ in splits if piece]

        def is_added(text: str, token_id: int, span: tuple[int, int], alone: bool) -> bool:
            # The unknown token's id is an added token's too: an added token is alone in its word
            # and its span holds its content (plus stripped whitespace; normalized, if it is matched so).
            token = added.get(token_id)
            if token is None or not alone:
                return False
            piece = text[span[0]:span[1]].strip()
            if token.normalized and backend.normalizer is not None:
                piece = backend.normalizer.normalize_str(piece)
            return piece == token.content

        out = []
        for text in texts:
            # Added tokens are cut out of the raw text before anything else and each is one word:
            # find them in the encoding itself rather than matching them again here.
            encoding = backend.encode(text, add_special_tokens=False)
            counts = collections.Counter(encoding.word_ids)
            spans, done = [], 0
            for token_id, span, word in zip(encoding.ids, encoding.offsets, encoding.word_ids):
                if span[0] >= done and is_added(text, token_id, span, counts[word] == 1):
                    spans += words_of(text[done:span[0]], done) + [span]
                    done = span[1]
            spans += words_of(text[done:], done)
            if trim:  # token offsets are trimmed of spaces one by one: take the words' spans from them
                for word, span in _token_spans(encoding).items():
                    spans[word] = span
            out.append(spans)
        return out

    @staticmethod
    def _check_texts(texts: list) -> None:
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TokenizerError(f"texts must be strings; item {i} is {type(text).__name__}")

    # -- in-graph layer -----------------------------------------------------------------------
    def as_keras_layer(self, max_length: int | None = None, name: str | None = None):
        """A Keras layer tokenizing tf.string tensors in-graph with exactly this tokenizer's ids.

        WordPiece (BERT family) and SentencePiece unigram (XLM-R, ALBERT) are supported; a tokenizer
        with no exact in-graph equivalent (byte-level BPE such as RoBERTa) raises TokenizerError.
        The layer returns ids, attention mask and token types; `layer(texts, pairs,
        return_offsets=True)` adds "offset_starts", "offset_ends", "word_ids" and "sequence_ids",
        equal to `self(texts, pairs, return_offsets=True, return_words=True)` (see `TokenizerLayer`).
        Building it probes HF's normalizer over every code point once per process (a second or two).

        Example:
            layer = tok.as_keras_layer(max_length=128)
            out = layer(tf.constant(["New York"]), return_offsets=True)
            out["offset_starts"], out["offset_ends"]  # [[0, 0, 4, 0]], [[0, 3, 8, 0]] for BERT
        """
        from tfft.tokenizers.sentencepiece_layer import SentencePieceLayer
        from tfft.tokenizers.wordpiece_layer import WordPieceLayer

        hf = self.hf_tokenizer
        kind = self.kind
        if kind == "bpe":
            raise TokenizerError(
                "byte-level BPE tokenizers (RoBERTa, GPT-2 style) have no exact in-graph equivalent in "
                "tensorflow-text; tokenize on the host with Tokenizer.__call__ instead"
            )
        layer_cls = {"wordpiece": WordPieceLayer, "sentencepiece": SentencePieceLayer}.get(kind)
        if layer_cls is None:
            raise TokenizerError(f"{kind!r} tokenizers have no in-graph equivalent in tfft")
        for attr, expected in (("padding_side", "right"), ("truncation_side", "right"), ("split_special_tokens", False)):
            if getattr(hf, attr, expected) != expected:
                raise TokenizerError(f"in-graph layers need {attr}={expected!r}, this tokenizer has {getattr(hf, attr)!r}")
        if self.pad_token_id is None:
            raise TokenizerError("this tokenizer has no pad token; in-graph layers pad with it")
        spec = json.loads(hf.backend_tokenizer.to_str())
        spec["padding"] = spec["truncation"] = None
        return layer_cls(json.dumps(spec, ensure_ascii=False), pad_token_id=self.pad_token_id,
                         max_length=max_length, name=name)

    def save_pretrained(self, directory: str | os.PathLike) -> pathlib.Path:
        """Write the tokenizer files (HF layout) to `directory`; `from_pretrained` reads them back."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.hf_tokenizer.backend_tokenizer.no_padding()
        self.hf_tokenizer.backend_tokenizer.no_truncation()
        self.hf_tokenizer.save_pretrained(str(directory))
        return directory

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, vocab_size={self.vocab_size}, directory={str(self.directory)!r})"
