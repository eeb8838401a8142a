"""The real all-MiniLM-L6-v2 tokenizer (its tokenizer.json pads and truncates to 128): host and in-graph,
ids and offsets."""

from __future__ import annotations

import pytest
import tensorflow as tf

from tests.tokenizers.tokenizer_parity import describe, layer, layer_batch, mismatched_rows, only, reference, tokenizer

pytestmark = pytest.mark.real_model


@pytest.mark.parametrize("pair, max_length", [(False, None), (False, 128), (False, 2),
                                              (True, None), (True, 32), (True, 3)])
def test_corpus_matches_hf(minilm_dir, text_pairs, pair, max_length):
    """Host and in-graph ids, offsets, word and sequence ids equal HF's on every corpus text or pair."""
    directory = str(minilm_dir)
    first, second = text_pairs
    second = second if pair else None
    ref = reference(directory, pair, max_length)
    tok = tokenizer(directory)
    host = tok(first, second, max_length=max_length, return_offsets=True, return_words=True)
    bad = mismatched_rows(ref, host, tok.pad_token_id)
    assert not bad, "host: " + describe(bad, first, second)
    keras_layer = layer(directory, max_length)
    inputs = (tf.constant(first), None if second is None else tf.constant(second))
    bad = mismatched_rows(only(ref), layer_batch(keras_layer(*inputs)), tok.pad_token_id)
    assert not bad, "in-graph: " + describe(bad, first, second)
    bad = mismatched_rows(ref, layer_batch(keras_layer(*inputs, return_offsets=True)), tok.pad_token_id)
    assert not bad, "in-graph offsets: " + describe(bad, first, second)


def test_fixed_128_padding_and_truncation_are_overridden(minilm_dir, texts):
    tok = tokenizer(str(minilm_dir))
    assert tok(["a short text"])["input_ids"].shape == (1, 5)
    assert tok(texts)["attention_mask"].sum(axis=1).max() > 128
    out = layer(str(minilm_dir), None)(tf.constant(["a short text"]))
    assert out["input_ids"].shape == (1, 5)
    assert tok.pad_token_id == 0 and tok.cls_token_id == 101 and tok.sep_token_id == 102 and tok.mask_token_id == 103
    assert tok.vocab_size == 30522 and tok.kind == "wordpiece"
