"""The real all-MiniLM-L6-v2 checkpoint reproduces transformers + torch.

Reference outputs come from tools/make_minilm_reference.py (English and Chinese reviews,
tweets, German/French/Russian sentences in one padded batch). Skipped without the checkpoint
package; the live comparison also needs torch.
"""

import json

import numpy as np
import pytest

from tests.conftest import FIXTURES
from tfft.encoders import BertEncoder, Encoder

pytestmark = pytest.mark.real_model

ATOL = 1e-4


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return Encoder.from_pretrained(minilm_dir)


def test_loads_every_tensor(minilm):
    assert type(minilm) is BertEncoder
    assert minilm.loading_report.unused == [] and minilm.loading_report.newly_initialized == []
    assert minilm.config.hidden_size == 384 and minilm.config.num_layers == 6


def test_matches_recorded_reference(minilm):
    ref = np.load(FIXTURES / "minilm" / "reference.npz")
    out = minilm({k: ref[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
    assert ref["attention_mask"].min() == 0  # really one padded batch
    np.testing.assert_allclose(out["sequence_output"], ref["sequence_output"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(out["pooled_output"], ref["pooled_output"], atol=ATOL, rtol=0)


@pytest.mark.requires("torch")
def test_matches_transformers_live(minilm, minilm_dir):
    import torch
    import transformers

    with open(FIXTURES / "texts" / "corpus.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    texts = [r["text"] for r in rows[::40]]  # every source and language, one batch
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    tokenizer.backend_tokenizer.no_padding()
    tokenizer.backend_tokenizer.no_truncation()
    batch = tokenizer(texts, padding="longest", truncation=True, max_length=128, return_tensors="np")
    model = transformers.AutoModel.from_pretrained(minilm_dir).eval()
    with torch.no_grad():
        theirs = model(**{k: torch.tensor(v) for k, v in batch.items()}).last_hidden_state.numpy()
    ours = minilm({k: v.astype(np.int32) for k, v in batch.items()})["sequence_output"]
    np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0)
