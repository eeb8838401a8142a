"""The host tokenizer: HF's fast tokenizer ids as int32 numpy batches, loading, saving and errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.tokenizers.tokenizer_parity import (
    ALL,
    REPO,
    TOKENIZERS,
    describe,
    hf_tokenizer,
    mismatched_rows,
    reference,
    resolve_max_length,
    tokenizer,
)
from tfft.errors import TokenizerError
from tfft.tokenizers import Tokenizer


@pytest.fixture(scope="module", params=ALL)
def fixture_name(request):
    return request.param


@pytest.fixture(scope="module")
def loaded(fixture_name):
    directory = str(TOKENIZERS / fixture_name)
    return tokenizer(directory), hf_tokenizer(directory)


# Truncation itself is HF's here (the in-graph tests run every setting); these check the wrapping.
@pytest.mark.parametrize("pair, max_length", [(False, None), (False, 5), (True, None), (True, "minimum")])
def test_corpus_matches_hf(fixture_name, loaded, text_pairs, pair, max_length):
    """ids, attention mask, token types, character offsets, word and sequence ids equal HF's on every text (or pair)."""
    tok, _ = loaded
    directory = str(TOKENIZERS / fixture_name)
    max_length = resolve_max_length(directory, pair, max_length)
    first, second = text_pairs
    got = tok(first, second if pair else None, max_length=max_length, return_offsets=True, return_words=True)
    bad = mismatched_rows(reference(directory, pair, max_length), got, tok.pad_token_id)
    assert not bad, describe(bad, first, second if pair else None)


def test_split_words_match_word_ids(loaded, texts):
    """Word i of split_words spans from the first to the last token with word id i; every word has a token."""
    tok, _ = loaded
    specials = " ".join(t for t in (tok.hf_tokenizer.cls_token, tok.hf_tokenizer.sep_token) if t)
    texts = list(texts) + [f"{specials} a{specials}b", "", " \u200b ", "\x00x\ufffd"]
    batch = tok(texts, return_offsets=True, return_words=True)
    words = tok.split_words(texts)
    assert len(words) == len(texts) and tok.split_words(texts[0]) == words[:1]
    for i, spans in enumerate(words):
        ids, offsets = batch["word_ids"][i], batch["offsets"][i]
        got = [(offsets[ids == w][0, 0], offsets[ids == w][-1, 1]) for w in range(len(spans))]
        assert got == spans and ids.max(initial=-1) == len(spans) - 1, describe([i], texts)


def test_truncation_respects_max_length(loaded, text_pairs):
    tok, _ = loaded
    for max_length, batch in ((6, tok(text_pairs[0], max_length=6)), (41, tok(*text_pairs, max_length=41))):
        assert batch["attention_mask"].sum(axis=1).max() == max_length
        assert batch["input_ids"].shape[1] == max_length


def test_max_length_below_special_tokens_is_an_error(loaded, text_pairs):
    tok, _ = loaded
    with pytest.raises(TokenizerError, match="special tokens"):
        tok(*text_pairs, max_length=tok.num_special_tokens(pair=True) - 1)


def test_properties(fixture_name, loaded):
    tok, hf = loaded
    assert tok.kind == {"xlm_roberta": "sentencepiece", "albert": "sentencepiece", "roberta": "bpe"}.get(
        fixture_name, "wordpiece"
    )
    assert tok.vocab_size == len(hf)
    for name in ("pad_token_id", "cls_token_id", "sep_token_id", "mask_token_id", "unk_token_id"):
        assert getattr(tok, name) == getattr(hf, name)
        assert isinstance(getattr(tok, name), int)
    assert fixture_name in repr(tok)


@pytest.mark.parametrize("name", ["bert_uncased", "xlm_roberta", "roberta"])
def test_save_pretrained_round_trip(name, text_pairs, tmp_path):
    tok = tokenizer(str(TOKENIZERS / name))
    tok.save_pretrained(tmp_path / "saved")
    again = Tokenizer.from_pretrained(tmp_path / "saved")
    first, second = text_pairs[0][:500], text_pairs[1][:500]
    for key, value in tok(first, second, max_length=48).items():
        np.testing.assert_array_equal(again(first, second, max_length=48)[key], value)


def test_empty_batch_and_single_string():
    tok = Tokenizer.from_pretrained(TOKENIZERS / "bert_uncased")
    empty = tok([], return_offsets=True, return_words=True)
    assert {k: v.shape for k, v in empty.items()} == {
        "input_ids": (0, 0), "attention_mask": (0, 0), "token_type_ids": (0, 0), "offsets": (0, 0, 2),
        "word_ids": (0, 0), "sequence_ids": (0, 0),
    }
    np.testing.assert_array_equal(tok("Hello world")["input_ids"], tok(["Hello world"])["input_ids"])


def test_missing_directory_names_the_path(tmp_path):
    missing = tmp_path / "no-such-tokenizer"
    with pytest.raises(TokenizerError, match="no-such-tokenizer"):
        Tokenizer.from_pretrained(missing)


def test_directory_without_tokenizer_files_names_the_path(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TokenizerError, match=str(tmp_path.name)):
        Tokenizer.from_pretrained(tmp_path)


def test_broken_tokenizer_json_names_the_path(tmp_path):
    target = tmp_path / "broken"
    shutil.copytree(TOKENIZERS / "bert_uncased", target)
    (target / "tokenizer.json").write_text("{not json")
    (target / "vocab.txt").unlink()
    with pytest.raises(TokenizerError, match="broken"):
        Tokenizer.from_pretrained(target)


def test_non_string_text_is_an_error():
    tok = Tokenizer.from_pretrained(TOKENIZERS / "bert_uncased")
    with pytest.raises(TokenizerError, match="item 1"):
        tok(["fine", 3])
    with pytest.raises(TokenizerError, match="2 texts but 1"):
        tok(["a", "b"], ["c"])


def test_fixed_padding_in_tokenizer_json_is_overridden(tmp_path, texts):
    """A tokenizer.json that pads and truncates to a fixed 128 (like all-MiniLM-L6-v2's) pads to the longest row."""
    target = tmp_path / "fixed"
    shutil.copytree(TOKENIZERS / "bert_uncased", target)
    spec = json.loads((target / "tokenizer.json").read_text(encoding="utf-8"))
    spec["truncation"] = {"max_length": 128, "strategy": "LongestFirst", "stride": 0, "direction": "Right"}
    spec["padding"] = {"strategy": {"Fixed": 128}, "direction": "Right", "pad_to_multiple_of": None,
                       "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"}
    (target / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    tok = Tokenizer.from_pretrained(target)
    short = tok(["a short text"])
    assert short["input_ids"].shape == (1, 5)
    lengths = tok(texts)["attention_mask"].sum(axis=1)
    assert lengths.max() > 128  # not truncated either
    saved = tok.save_pretrained(tmp_path / "saved")
    spec = json.loads((saved / "tokenizer.json").read_text(encoding="utf-8"))
    assert spec["padding"] is None and spec["truncation"] is None


def test_import_is_quiet_without_torch():
    """transformers prints 'PyTorch was not found' at import when torch is missing; tfft keeps it quiet."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from tfft.tokenizers import Tokenizer\n"
        f"tok = Tokenizer.from_pretrained({str(TOKENIZERS / 'bert_uncased')!r})\n"
        "print(tok(['hello'])['input_ids'].tolist())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TRANSFORMERS_VERBOSITY", "TRANSFORMERS_NO_ADVISORY_WARNINGS")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                            cwd=REPO, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    assert "PyTorch" not in result.stderr + result.stdout
    assert "[[" in result.stdout
