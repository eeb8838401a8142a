"""In-graph layers: id-for-id equal to HF's fast tokenizer, in eager, tf.function, tf.data and SavedModel."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.tokenizers.tokenizer_parity import (
    IN_GRAPH,
    SETTINGS,
    TOKENIZERS,
    describe,
    hf_reference,
    hf_tokenizer,
    layer,
    layer_batch,
    mismatched_rows,
    only,
    reference,
    resolve_max_length,
    tokenizer,
)
from tfft.errors import TokenizerError
from tfft.tokenizers.tokenizer_layer import TokenizerLayer


@pytest.mark.parametrize("fixture_name", IN_GRAPH)
@pytest.mark.parametrize("pair, max_length", SETTINGS)
def test_corpus_matches_hf(fixture_name, text_pairs, pair, max_length):
    """ids, attention mask and token types equal HF's on every corpus text (or pair)."""
    directory = str(TOKENIZERS / fixture_name)
    max_length = resolve_max_length(directory, pair, max_length)
    first, second = text_pairs
    out = layer(directory, max_length)(tf.constant(first), tf.constant(second) if pair else None)
    ref = only(reference(directory, pair, max_length))
    bad = mismatched_rows(ref, {k: v.numpy() for k, v in out.items()}, tokenizer(directory).pad_token_id)
    assert not bad, describe(bad, first, second if pair else None)


@pytest.mark.parametrize("fixture_name", ["bert_uncased", "xlm_roberta"])  # 3 and 4 special tokens
def test_every_truncation_split_matches_hf(fixture_name):
    """longest_first on pairs of every length up to 12 tokens, for budgets covering each of its branches
    (ids, and offsets, word and sequence ids)."""
    directory = str(TOKENIZERS / fixture_name)
    hf = hf_tokenizer(directory)
    first = [" ".join(["the"] * a) for a in range(13) for b in range(13)]
    second = [" ".join(["and"] * b) for a in range(13) for b in range(13)]
    n_special = tokenizer(directory).num_special_tokens(pair=True)
    pad_id = tokenizer(directory).pad_token_id
    for max_length in (n_special + budget for budget in (0, 1, 2, 5, 6, 13)):
        ref = hf_reference(hf, first, second, max_length, offsets=True, words=True)
        keras_layer = layer(directory, max_length)
        out = keras_layer(tf.constant(first), tf.constant(second))
        bad = mismatched_rows(only(ref), out, pad_id)
        assert not bad, f"max_length={max_length}: " + describe(bad, first, second)
        out = layer_batch(keras_layer(tf.constant(first), tf.constant(second), return_offsets=True))
        bad = mismatched_rows(ref, out, pad_id)
        assert not bad, f"max_length={max_length}, offsets: " + describe(bad, first, second)
        host = tokenizer(directory)(first, second, max_length=max_length, return_offsets=True, return_words=True)
        assert not mismatched_rows(ref, host, pad_id)


@pytest.mark.parametrize("fixture_name", ["bert_cased", "xlm_roberta"])
def test_tf_data_map(fixture_name, text_pairs):
    directory = str(TOKENIZERS / fixture_name)
    tok, keras_layer = tokenizer(directory), layer(directory, 32)
    first, second = (list(t[:128]) for t in text_pairs)
    ds = tf.data.Dataset.from_tensor_slices((first, second)).batch(64).map(keras_layer)
    for i, batch in enumerate(ds):
        host = tok(first[i * 64:(i + 1) * 64], second[i * 64:(i + 1) * 64], max_length=32)
        for key, value in host.items():
            np.testing.assert_array_equal(batch[key].numpy(), value)


class Serving(tf.Module):
    """What an export does: a tf.function on raw text around the tokenizer layer."""

    def __init__(self, keras_layer):
        super().__init__()
        self.tokenizer = keras_layer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def serve(self, texts, pairs):
        return self.tokenizer(texts, pairs)


@pytest.mark.parametrize("fixture_name", ["bert_uncased", "albert"])
def test_saved_model_round_trip(fixture_name, texts, tmp_path):
    """A tf.function on raw text, saved as a SavedModel and reloaded after `import tensorflow_text`: same ids."""
    directory = str(TOKENIZERS / fixture_name)
    module = Serving(tokenizer(directory).as_keras_layer(max_length=48))
    tf.saved_model.save(module, str(tmp_path / "saved"))
    del module

    import tensorflow_text  # noqa: F401  (registers the ops a reloaded graph may use)

    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    first, second = list(texts[:300]), list(texts[300:600])
    out = reloaded.serve(tf.constant(first), tf.constant(second))
    host = tokenizer(directory)(first, second, max_length=48)
    for key, value in host.items():
        np.testing.assert_array_equal(out[key].numpy(), value)


@pytest.mark.parametrize("fixture_name", IN_GRAPH)
def test_config_round_trip_and_scalar_input(fixture_name):
    directory = str(TOKENIZERS / fixture_name)
    keras_layer = layer(directory, 16)
    clone = type(keras_layer).from_config(keras_layer.get_config())
    texts = tf.constant(["Hello, World! Ça va? 你好 🙂", "", "  "])
    for key, value in keras_layer(texts).items():
        np.testing.assert_array_equal(clone(texts)[key].numpy(), value.numpy())
    single = keras_layer(tf.constant("Hello, World!"), tf.constant("Second"))
    host = tokenizer(directory)(["Hello, World!"], ["Second"], max_length=16)
    assert single["input_ids"].shape.rank == 1
    np.testing.assert_array_equal(single["input_ids"].numpy(), host["input_ids"][0])


def test_empty_batch():
    out = layer(str(TOKENIZERS / "xlm_roberta"), None)(tf.constant([], tf.string))
    assert out["input_ids"].shape == (0, 0) and out["input_ids"].dtype == tf.int32


def test_byte_level_bpe_has_no_in_graph_layer():
    with pytest.raises(TokenizerError, match="byte-level BPE.*no exact in-graph equivalent"):
        tokenizer(str(TOKENIZERS / "roberta")).as_keras_layer()


def test_max_length_below_special_tokens_is_an_error():
    keras_layer = layer(str(TOKENIZERS / "bert_uncased"), 2)
    assert keras_layer(tf.constant(["a b c"]))["input_ids"].numpy().tolist() == [[2, 3]]
    with pytest.raises(TokenizerError, match="max_length=2 cannot hold the 3 special tokens of a pair"):
        keras_layer(tf.constant(["a"]), tf.constant(["b"]))


def test_layers_are_keras_layers():
    keras_layer = layer(str(TOKENIZERS / "albert"), None)
    assert isinstance(keras_layer, TokenizerLayer)
    assert keras_layer.get_config()["pad_token_id"] == tokenizer(str(TOKENIZERS / "albert")).pad_token_id
