"""In-graph offsets, word ids and sequence ids (`layer(..., return_offsets=True)`) equal HF's, id for id."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.tokenizers.tokenizer_parity import (
    OFFSETS,
    SETTINGS,
    TOKENIZERS,
    assert_layer_matches_host,
    describe,
    layer,
    layer_batch,
    mismatched_rows,
    reference,
    resolve_max_length,
    tokenizer,
)
from tfft.errors import TokenizerError
from tfft.tokenizers import Tokenizer
from tfft.tokenizers.wordpiece_layer import WordPieceLayer, WordPieceModel


@pytest.mark.parametrize("fixture_name", OFFSETS)
@pytest.mark.parametrize("pair, max_length", SETTINGS)
def test_corpus_matches_hf(fixture_name, text_pairs, pair, max_length):
    """ids, mask, types, offsets, word and sequence ids equal HF's on every corpus text (or pair)."""
    directory = str(TOKENIZERS / fixture_name)
    max_length = resolve_max_length(directory, pair, max_length)
    first, second = text_pairs
    out = layer(directory, max_length)(tf.constant(first), tf.constant(second) if pair else None, return_offsets=True)
    assert set(out) == {"input_ids", "attention_mask", "token_type_ids", "offset_starts", "offset_ends",
                        "word_ids", "sequence_ids"}
    bad = mismatched_rows(reference(directory, pair, max_length), layer_batch(out), tokenizer(directory).pad_token_id)
    assert not bad, describe(bad, first, second if pair else None)


@pytest.mark.parametrize("fixture_name", OFFSETS)
def test_special_tokens_in_text(fixture_name, texts):
    """Special tokens written in the text are one word each, with their own offsets, between other words."""
    tok = tokenizer(str(TOKENIZERS / fixture_name))
    specials = [t for t in (tok.hf_tokenizer.cls_token, tok.hf_tokenizer.sep_token, tok.hf_tokenizer.mask_token) if t]
    mixed = []
    for i, text in enumerate(texts[::7]):
        words = text.split(" ")
        at = i % (len(words) + 1)
        joint = ("", " ", "\u3000")[i % 3]
        mixed.append(" ".join(words[:at]) + joint + specials[i % len(specials)] + joint + " ".join(words[at:]))
    mixed += [specials[0] * 3, f" {specials[-1]} ", f"x{specials[0]}y{specials[-1]}\u200b"]
    assert_layer_matches_host(tok, layer(str(TOKENIZERS / fixture_name), None), mixed, mixed[::-1])
    assert_layer_matches_host(tok, layer(str(TOKENIZERS / fixture_name), 24), mixed, mixed[::-1])


def test_offsets_point_into_each_segment():
    """Offsets index the token's own text (the pair's for segment 1), in code points: emoji count as one."""
    keras_layer = layer(str(TOKENIZERS / "bert_cased"), None)
    text, pair = "\U0001f600 Z\u00fcrich \u4e2d", "x\U0001f600y Ab"
    out = {k: v.numpy()[0].tolist() for k, v in keras_layer(tf.constant([text]), tf.constant([pair]),
                                                             return_offsets=True).items()}
    for start, end, sequence in zip(out["offset_starts"], out["offset_ends"], out["sequence_ids"]):
        if sequence >= 0:
            assert [text, pair][sequence][start:end].strip(), (start, end, sequence)
    assert out["sequence_ids"][0] == -1 and out["sequence_ids"][-1] == -1 and out["word_ids"][-1] == -1
    assert out["offset_starts"][-1] == out["offset_ends"][-1] == 0


def test_tf_function_tf_data_and_scalar_input(text_pairs):
    directory = str(TOKENIZERS / "bert_uncased")
    tok, keras_layer = tokenizer(directory), layer(directory, 32)
    first, second = (list(t[:128]) for t in text_pairs)
    host = tok(first, second, max_length=32, return_offsets=True, return_words=True)
    serve = tf.function(lambda a, b: keras_layer(a, b, return_offsets=True))
    ds = tf.data.Dataset.from_tensor_slices((first, second)).batch(64).map(serve.python_function)
    got = [layer_batch(batch) for batch in ds]
    for key, value in host.items():
        np.testing.assert_array_equal(layer_batch(serve(tf.constant(first), tf.constant(second)))[key], value)
        np.testing.assert_array_equal(np.concatenate([g[key] for g in got]), value)
    single = layer_batch(keras_layer(tf.constant(first[0]), tf.constant(second[0]), return_offsets=True))
    for key, value in host.items():
        np.testing.assert_array_equal(single[key], value[0][: len(single[key])])


class Serving(tf.Module):
    """An export taking raw text and returning ids and offsets."""

    def __init__(self, keras_layer):
        super().__init__()
        self.tokenizer = keras_layer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def serve(self, texts, pairs):
        return self.tokenizer(texts, pairs, return_offsets=True)


@pytest.mark.parametrize("fixture_name", ["bert_uncased", "xlm_roberta"])
def test_saved_model_round_trip(fixture_name, texts, tmp_path):
    directory = str(TOKENIZERS / fixture_name)
    tf.saved_model.save(Serving(tokenizer(directory).as_keras_layer(max_length=48)), str(tmp_path / "saved"))

    import tensorflow_text  # noqa: F401  (registers the ops a reloaded graph may use)

    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    first, second = list(texts[:300]), list(texts[300:600])
    out = layer_batch(reloaded.serve(tf.constant(first), tf.constant(second)))
    host = tokenizer(directory)(first, second, max_length=48, return_offsets=True, return_words=True)
    assert set(out) == set(host)
    for key, value in host.items():
        np.testing.assert_array_equal(out[key], value)


def test_empty_inputs():
    keras_layer = layer(str(TOKENIZERS / "bert_uncased"), None)
    out = keras_layer(tf.constant([], tf.string), return_offsets=True)
    assert all(v.shape == (0, 0) and v.dtype == tf.int32 for v in out.values())
    out = layer_batch(keras_layer(tf.constant(["", " \u200b "]), tf.constant(["\x00", "a"]), return_offsets=True))
    np.testing.assert_array_equal(out["word_ids"], [[-1, -1, -1, -1], [-1, -1, 0, -1]])
    np.testing.assert_array_equal(out["sequence_ids"], [[-1, -1, -1, -1], [-1, -1, 1, -1]])
    np.testing.assert_array_equal(out["offsets"][1, 2], [0, 1])


def test_added_tokens_with_lstrip_and_rstrip_cover_their_whitespace():
    from tokenizers import AddedToken

    tok = Tokenizer.from_pretrained(TOKENIZERS / "bert_uncased")
    tok.hf_tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken("<ent>", lstrip=True, rstrip=True, normalized=False, special=True)]}
    )
    texts = ["a <ent> b", "x<ent>y", "  <ent>  ", "<ent><ent>", "[CLS]<ent> [SEP] \u3000<ent>\u3000z", "no entity"]
    assert_layer_matches_host(tok, tok.as_keras_layer(), texts, texts[::-1])
    out = tok.as_keras_layer()(tf.constant(["a <ent> b"]), return_offsets=True)
    assert out["offset_starts"].numpy()[0, 2] == 1 and out["offset_ends"].numpy()[0, 2] == 8


@pytest.mark.parametrize("fixture_name", ["xlm_roberta", "albert"])
def test_code_points_match_hf(fixture_name):
    """Every 11th code point (planes 0-3 and 14-16), alone and among letters and accents (WordPiece:
    test_wordpiece_layer, whose host comparison covers offsets too)."""
    directory = str(TOKENIZERS / fixture_name)
    cps = [c for c in range(0, 0x110000, 11) if not 0xD800 <= c <= 0xDFFF and not 0x40000 <= c < 0xE0000]
    texts = [f"{chr(c)}" if i % 3 == 0 else f"a{chr(c)}b \u00c9{chr(c)}\u0301x" if i % 3 == 1
             else f"\u00b2\u0301{chr(c)} {chr(c)}\u0301x" for i, c in enumerate(cps)]
    assert_layer_matches_host(tokenizer(directory), layer(directory, None), texts)


# Where HF's alignment is not "each normalized character with the one it came from": a charsmap
# removal at the very start shifts what follows (\x01ab: "a" is aligned with \x01), a removal
# after an expansion re-aligns its last character (ﬁ\x01), Replace aligns its content with the
# match's last character (``), NFD reorders marks and aligns them by position (U+1B44 after an accent).
QUIRKS = ["\x01ab", "\x01\x01abc", "a\x01b", "ab\x01", "\ufb01\x01x", "x\x01\ufb01\x01\x01y", "\uff76\uff9e\x01y",
          "\x01 \x01a", "a``b''c```", "``", "''x", "\u00b2\u0301\u1b44", "x\u0300\u1b44y", "\u00ea\u0300\u1b44 z",
          "k\u1b44\u0300\u0300\u1b44.", "\u0300\u1b44", "e\u0323\u0302 e\u0302\u0323", "a\u0301\u0302\u0303\u0304",
          "\u1100\u1161\u11a8", "\r\n\r", "\u0600\u0661\u0301", "\U0001f468\u200d\u00a9\u0301", "\u0130stanbul",
          "\u2581 \u2581x \u2581\u2581y z\u2581", "a" * 101 + " b", "\u4e2d\u56fd\u4eba x"]


@pytest.mark.parametrize("fixture_name", OFFSETS)
def test_alignment_quirks_match_hf(fixture_name):
    directory = str(TOKENIZERS / fixture_name)
    assert_layer_matches_host(tokenizer(directory), layer(directory, None), QUIRKS, QUIRKS[::-1])


@pytest.mark.parametrize("fixture_name", OFFSETS)
def test_combining_marks_match_hf(fixture_name):
    """Random runs of combining marks (every class, kept or stripped, out of canonical order)."""
    import random
    import unicodedata

    marks = [chr(c) for c in range(0x300, 0x1E950) if unicodedata.combining(chr(c))]
    rng = random.Random(0)
    texts = [rng.choice("ae\u00eakq\u0915 ") + "".join(rng.choices(marks, k=rng.randrange(1, 5)))
             + rng.choice(["", "x", " y", "\u0301"]) for _ in range(2000)]
    directory = str(TOKENIZERS / fixture_name)
    assert_layer_matches_host(tokenizer(directory), layer(directory, None), texts)


class IdsOnlyModel(WordPieceModel):
    """A model type whose offsets tfft does not know to equal HF's."""

    def _allow_offsets(self):
        pass


class IdsOnlyLayer(WordPieceLayer):
    model_class = IdsOnlyModel


def test_layer_without_offsets_refuses_them():
    tok = tokenizer(str(TOKENIZERS / "bert_uncased"))
    spec = tok.as_keras_layer().tokenizer_json
    keras_layer = IdsOnlyLayer(spec, pad_token_id=tok.pad_token_id)
    assert not keras_layer.supports_offsets and layer(str(TOKENIZERS / "bert_uncased"), None).supports_offsets
    np.testing.assert_array_equal(keras_layer(tf.constant(["a b"]))["input_ids"].numpy(), tok(["a b"])["input_ids"])
    with pytest.raises(TokenizerError, match="IdsOnlyLayer has no in-graph offsets equal to HF"):
        keras_layer(tf.constant(["a b"]), return_offsets=True)
