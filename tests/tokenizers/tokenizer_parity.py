"""Helpers shared by the tokenizer tests: the committed corpus, fixture paths, HF references, row comparison."""

from __future__ import annotations

import functools
import json
import pathlib

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
TOKENIZERS = FIXTURES / "tokenizers"
CORPUS = FIXTURES / "texts" / "corpus.jsonl"
IN_GRAPH = ["bert_uncased", "bert_cased", "xlm_roberta", "albert"]
OFFSETS = IN_GRAPH  # in-graph offsets, word and sequence ids too
ALL = IN_GRAPH + ["roberta"]
# (pair, max_length) settings every tokenizer is checked under on the whole corpus. "minimum" leaves
# room for the special tokens only. Long pairs are not truncated to a handful of tokens: HF's backend
# then builds every pair of overflow windows, seconds per call (short pairs cover those budgets).
SETTINGS = [(False, None), (False, 5), (False, "minimum"), (True, None), (True, 32), (True, "minimum")]


@functools.cache
def corpus() -> tuple[str, ...]:
    with open(CORPUS, encoding="utf-8") as f:
        return tuple(json.loads(line)["text"] for line in f)


@functools.cache
def pairs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every corpus text paired with another one (of another source and language, mostly)."""
    texts = corpus()
    n = len(texts)
    return texts, tuple(texts[(i * 7 + 1) % n] for i in range(n))


@functools.cache
def hf_tokenizer(directory: str, **kwargs):
    """An HF fast tokenizer loaded on its own (not through tfft), as the reference."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory, **kwargs)


def hf_reference(hf, texts, text_pairs=None, max_length=None, offsets=False, words=False) -> dict[str, list]:
    """HF's own answer as unpadded rows (lists of numpy arrays): what tfft must reproduce.

    words: also "word_ids" and "sequence_ids" (HF's `word_ids()`, `sequence_ids()`, None as -1).
    """
    enc = hf(
        list(texts),
        None if text_pairs is None else list(text_pairs),
        truncation=max_length is not None,
        max_length=max_length,
        return_token_type_ids=True,
        return_attention_mask=True,
        return_offsets_mapping=offsets,
    )
    keys = ("input_ids", "attention_mask", "token_type_ids") + (("offset_mapping",) if offsets else ())
    out = {k: [np.asarray(row, np.int64).reshape(len(row), -1).squeeze(-1) if k != "offset_mapping"
               else np.asarray(row, np.int64).reshape(len(row), 2) for row in enc[k]] for k in keys}
    if offsets:
        out["offsets"] = out.pop("offset_mapping")
    if words:
        for key, rows in (("word_ids", enc.word_ids), ("sequence_ids", enc.sequence_ids)):
            out[key] = [np.asarray([-1 if w is None else w for w in rows(i)], np.int64).reshape(-1)
                        for i in range(len(out["input_ids"]))]
    return out


IDS = ("input_ids", "attention_mask", "token_type_ids")


def only(reference: dict, keys=IDS) -> dict:
    """The reference restricted to some keys (by default what the layers return without offsets)."""
    return {k: v for k, v in reference.items() if k in keys}


def layer_batch(out: dict) -> dict:
    """A layer's output as numpy, with offset_starts/offset_ends joined into the host's "offsets" [batch, seq, 2]."""
    batch = {k: v.numpy() for k, v in out.items() if k not in ("offset_starts", "offset_ends")}
    if "offset_starts" in out:
        batch["offsets"] = np.stack([out["offset_starts"].numpy(), out["offset_ends"].numpy()], axis=-1)
    return batch


# Padding of each key in a tfft batch.
PADDING = {"attention_mask": 0, "token_type_ids": 0, "offsets": 0, "word_ids": -1, "sequence_ids": -1}


def mismatched_rows(reference: dict, batch: dict, pad_id: int) -> list[int]:
    """Rows where a padded int32 batch differs from HF's unpadded rows (every key of `reference`).

    HF's rows are padded here the way tfft must pad: pad id, mask 0, type 0, offsets (0, 0),
    word and sequence ids -1.
    """
    lengths = [len(row) for row in reference["input_ids"]]
    longest = max(lengths, default=0)
    bad = np.zeros(len(lengths), bool)
    for key, rows in reference.items():
        got = np.asarray(batch[key])
        assert got.dtype == np.int32, (key, got.dtype)
        expected = np.full((len(rows), longest) + got.shape[2:], PADDING.get(key, pad_id), np.int64)
        for i, row in enumerate(rows):
            expected[i, :len(row)] = row
        assert got.shape == expected.shape, (key, got.shape, expected.shape)
        bad |= (got != expected).reshape(len(rows), -1).any(axis=1)
    return np.nonzero(bad)[0].tolist()


def describe(bad: list[int], texts, text_pairs=None) -> str:
    shown = [repr(texts[i][:80]) + ("" if text_pairs is None else " | " + repr(text_pairs[i][:40])) for i in bad[:5]]
    return f"{len(bad)} of {len(texts)} rows differ from HF, e.g. " + "; ".join(shown)


@functools.cache
def tokenizer(directory: str, **kwargs):
    """A tfft Tokenizer, loaded once per session."""
    from tfft.tokenizers import Tokenizer

    return Tokenizer.from_pretrained(directory, **kwargs)


@functools.cache
def layer(directory: str, max_length: int | None, **kwargs):
    """An in-graph layer, built once per session and max_length."""
    return tokenizer(directory, **kwargs).as_keras_layer(max_length=max_length)


@functools.cache
def reference(directory: str, pair: bool, max_length: int | None, step: int = 1, **kwargs) -> dict:
    """HF's answer on the corpus (every step-th text, or pair), computed once per session."""
    first, second = pairs()
    return hf_reference(hf_tokenizer(directory, **kwargs), first[::step], second[::step] if pair else None,
                        max_length, offsets=True, words=True)


def resolve_max_length(directory: str, pair: bool, max_length, **kwargs) -> int | None:
    """"minimum" is the smallest max_length that holds the special tokens."""
    if max_length == "minimum":
        return tokenizer(directory, **kwargs).num_special_tokens(pair=pair)
    return max_length


def assert_layer_matches_host(tok, keras_layer, texts, text_pairs=None) -> None:
    """The in-graph layer gives exactly the host tokenizer's batch (which the host tests tie to HF),
    offsets, word and sequence ids included where the layer returns them."""
    import tensorflow as tf

    offsets = keras_layer.supports_offsets
    host = tok(texts, text_pairs, max_length=keras_layer.max_length, return_offsets=offsets, return_words=offsets)
    out = layer_batch(keras_layer(tf.constant(texts), None if text_pairs is None else tf.constant(text_pairs),
                                  return_offsets=offsets))
    assert set(out) == set(host), (sorted(out), sorted(host))
    for key, value in host.items():
        same = (out[key] == value).reshape(len(value), -1).all(axis=1) if out[key].shape == value.shape else None
        assert same is not None, f"{key}: shape {out[key].shape} != {value.shape}"
        bad = [i for i, ok in enumerate(same) if not ok]
        assert not bad, f"{key}: " + describe(bad, texts, text_pairs)


def assert_options_match_hf(directory: str, options: dict, text_pairs) -> None:
    """The layer built with tokenizer `options` equals HF with the same options, singles and pairs,
    on every third text of the corpus (options add little beyond the default runs); offsets too
    where the layer returns them."""
    import tensorflow as tf

    first, second = text_pairs[0][::3], text_pairs[1][::3]
    for pair in (False, True):
        ref = reference(directory, pair, None, step=3, **options)
        keras_layer = layer(directory, None, **options)
        out = keras_layer(tf.constant(first), tf.constant(second) if pair else None,
                          return_offsets=keras_layer.supports_offsets)
        if not keras_layer.supports_offsets:
            ref = only(ref)
        bad = mismatched_rows(ref, layer_batch(out), tokenizer(directory, **options).pad_token_id)
        assert not bad, f"{options}: " + describe(bad, first, second if pair else None)
