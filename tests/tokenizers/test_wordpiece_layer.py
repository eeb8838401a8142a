"""WordPiece in-graph layer: BertNormalizer options, added tokens and awkward characters, against HF."""

from __future__ import annotations

import pytest

from tests.tokenizers.tokenizer_parity import (
    TOKENIZERS,
    assert_layer_matches_host,
    assert_options_match_hf,
    layer,
    tokenizer,
)
from tfft.errors import TokenizerError
from tfft.tokenizers import Tokenizer


@pytest.mark.parametrize("fixture_name, options", [
    ("bert_uncased", {"strip_accents": False}),  # lowercase, keep accents (multilingual-uncased style)
    ("bert_uncased", {"tokenize_chinese_chars": False}),
    ("bert_cased", {"strip_accents": True}),  # accents stripped without lowercasing
])
def test_normalizer_options_match_hf(fixture_name, options, text_pairs):
    assert_options_match_hf(str(TOKENIZERS / fixture_name), options, text_pairs)


@pytest.mark.parametrize("fixture_name", ["bert_uncased", "bert_cased"])
def test_code_points_match_hf(fixture_name):
    """Every 11th code point (planes 0-3 and 14-16), alone and between letters, as HF tokenizes it."""
    directory = str(TOKENIZERS / fixture_name)
    cps = [c for c in range(0, 0x110000, 11) if not 0xD800 <= c <= 0xDFFF and not 0x40000 <= c < 0xE0000]
    texts = [f"{chr(c)}" if i % 2 else f"a{chr(c)}b \u00c9{chr(c)}\u0301x" for i, c in enumerate(cps)]
    assert_layer_matches_host(tokenizer(directory), layer(directory, None), texts)


def test_word_length_limit_counts_characters():
    """HF's max_input_chars_per_word=100 counts characters; tf-text's limit counts bytes."""
    directory = str(TOKENIZERS / "bert_uncased")
    texts = [c * n for c in ("a", "\u0436", "\U0001f600x") for n in (99, 100, 101)]
    assert_layer_matches_host(tokenizer(directory), layer(directory, None), texts)


def test_added_tokens_with_lstrip_and_rstrip():
    from tokenizers import AddedToken

    tok = Tokenizer.from_pretrained(TOKENIZERS / "bert_uncased")
    tok.hf_tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken("<ent>", lstrip=True, rstrip=True, normalized=False, special=True)]}
    )
    texts = ["a <ent> b", "x<ent>y", "  <ent>  ", "<ent><ent>", "[CLS]<ent> [SEP] \u3000<ent>\u3000z", "no entity"]
    keras_layer = tok.as_keras_layer(max_length=12)
    assert_layer_matches_host(tok, keras_layer, texts, texts[::-1])
    assert tok(["<ent>"])["input_ids"][0, 1] == tok.vocab_size - 1


def test_normalized_added_tokens_are_refused():
    tok = Tokenizer.from_pretrained(TOKENIZERS / "bert_uncased")
    tok.hf_tokenizer.add_tokens(["brandnewword"])  # non-special added tokens match after normalization
    with pytest.raises(TokenizerError, match="brandnewword"):
        tok.as_keras_layer()
