"""SentencePiece (unigram) in-graph layer: normalizer options, charsmap clusters and lattice ties, against HF."""

from __future__ import annotations

import base64
import json

import pytest
import tensorflow as tf

from tests.tokenizers.tokenizer_parity import (
    TOKENIZERS,
    assert_layer_matches_host,
    assert_options_match_hf,
    describe,
    layer,
    tokenizer,
)
from tfft.tokenizers import Tokenizer
from tfft.tokenizers.precompiled_charsmap import PrecompiledNormalizer


@pytest.mark.parametrize("options", [{"keep_accents": True}])
def test_albert_options_match_hf(options, text_pairs):
    assert_options_match_hf(str(TOKENIZERS / "albert"), options, text_pairs)


@pytest.mark.parametrize("fixture_name", ["xlm_roberta", "albert"])
def test_equal_score_segmentations_match_hf(fixture_name):
    """Runs like "0000" or "!!!!" have several best segmentations: HF's float64 lattice picks one."""
    directory = str(TOKENIZERS / fixture_name)
    texts = [c * n for c in ("0", "!", "l", ".", "~", "\u597d", "ab") for n in range(1, 25)]
    texts += ["x" + c * n + " " + c * (n + 1) for c in ("0", "!") for n in (7, 13, 20)]
    assert_layer_matches_host(tokenizer(directory), layer(directory, None), texts)


@pytest.mark.parametrize("fixture_name", ["xlm_roberta", "albert"])
def test_whitespace_and_unknowns_match_hf(fixture_name):
    directory = str(TOKENIZERS / fixture_name)
    texts = ["a\u3000b\u00a0c\x85d\u2028e\tf\r\ng", "\u2581 \u2581x \u2581\u2581y z\u2581", "   ", "",
             "\U0001f9ff\U0001fae8\U0001f9ff unknown\U000e0041\U000e0042 runs", "\ufffd\ufffd\x00\x01 a\u200bb"]
    assert_layer_matches_host(tokenizer(directory), layer(directory, None), texts, texts[::-1])


def test_charsmap_clusters_match_hf():
    """HF maps grapheme clusters under 6 bytes as a whole (by their shortest key prefix), others char by char."""
    from tokenizers import normalizers

    spec = json.loads((TOKENIZERS / "xlm_roberta" / "tokenizer.json").read_text(encoding="utf-8"))
    charsmap = base64.b64decode(spec["normalizer"]["precompiled_charsmap"])
    hf = normalizers.Precompiled(charsmap)
    cps = [c for c in range(0x20, 0x110000, 3) if not 0xD800 <= c <= 0xDFFF and not 0x40000 <= c < 0xE0000]
    texts = [chr(c) for c in cps] + ["\u00b2\u0301" + chr(c) for c in cps] + [chr(c) + "\u0301x" for c in cps]
    texts += ["a\u0301\u0302\u0303\u0304", "\u1100\u1161\u11a8", "\uff76\uff9e", "e\u0323\u0302 \u0065\u0302\u0323",
              "\r\n\r", "\u0600\u0661\u0301", "\U0001f468\u200d\u00a9\u0301", "\u00a9\ufe0f"]
    out = PrecompiledNormalizer(charsmap)(tf.constant(texts)).numpy()
    bad = [i for i, (t, o) in enumerate(zip(texts, out)) if hf.normalize_str(t).encode("utf-8") != o]
    assert not bad, describe(bad, texts)


def test_decomposition_without_accent_stripping_reorders_marks(text_pairs):
    """NFKD kept without StripAccents must also reorder combining marks (done with ICU, not per character)."""
    from tokenizers import normalizers

    tok = Tokenizer.from_pretrained(TOKENIZERS / "albert")
    backend = tok.hf_tokenizer.backend_tokenizer
    charsmap = base64.b64decode(json.loads(backend.to_str())["normalizer"]["normalizers"][-1]["precompiled_charsmap"])
    backend.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.Lowercase(),
                                               normalizers.Precompiled(charsmap)])
    texts = list(text_pairs[0][::4]) + ["a\u0301\u0327 e\u0327\u0301 \u1e09\u0301", "q\u0323\u0307 q\u0307\u0323"]
    assert_layer_matches_host(tok, tok.as_keras_layer(), texts)
