"""`Tokenizer`: HF's fast tokenizer on the host, and an id-for-id equal in-graph Keras layer."""

from __future__ import annotations

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
    def __call__(self, texts, text_pairs=None, max_length: int | None = None, return_offsets: bool = False):
        """Tokenize a batch of strings (and optional second segments) into int32 numpy arrays.

        Returns {"input_ids", "attention_mask", "token_type_ids"} of shape [batch, longest row], plus
        "offsets" [batch, longest row, 2] (character start, end; (0, 0) for special and padding
        tokens) when `return_offsets`. Sequences are truncated like HF's `truncation=True,
        max_length=max_length` (longest_first for pairs) only when `max_length` is given.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        if text_pairs is not None:
            text_pairs = [text_pairs] if isinstance(text_pairs, str) else list(text_pairs)
            if len(text_pairs) != len(texts):
                raise TokenizerError(f"got {len(texts)} texts but {len(text_pairs)} text_pairs")
        for i, text in enumerate(texts + (text_pairs or [])):
            if not isinstance(text, str):
                raise TokenizerError(f"texts must be strings; item {i} is {type(text).__name__}")
        if max_length is not None:
            n_special = self.num_special_tokens(pair=text_pairs is not None)
            if max_length < n_special:
                kind = "pair" if text_pairs is not None else "single"
                raise TokenizerError(
                    f"max_length={max_length} cannot hold the {n_special} special tokens of a {kind} sequence"
                )
        names = ["input_ids", "attention_mask", "token_type_ids"] + (["offsets"] if return_offsets else [])
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
        out = {n: np.asarray(enc["offset_mapping" if n == "offsets" else n], dtype=np.int32) for n in names}
        if return_offsets and out["offsets"].ndim != 3:  # every row empty: shape [batch, 0]
            out["offsets"] = out["offsets"].reshape(len(texts), 0, 2)
        return out

    # -- in-graph layer -----------------------------------------------------------------------
    def as_keras_layer(self, max_length: int | None = None, name: str | None = None):
        """A Keras layer tokenizing tf.string tensors in-graph with exactly this tokenizer's ids.

        WordPiece (BERT family) and SentencePiece unigram (XLM-R, ALBERT) are supported; a tokenizer
        with no exact in-graph equivalent (byte-level BPE such as RoBERTa) raises TokenizerError.
        The layer returns ids, attention mask and token types; character offsets are host-only.
        Building it probes HF's normalizer over every code point once per process (a second or two).
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
