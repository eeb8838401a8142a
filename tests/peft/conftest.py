"""Fixtures of the tfft.peft tests."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_batch(tiny_checkpoint):
    """Token ids of a few texts for the tiny BERT, padded (so attention masks matter)."""
    from tfft.tokenizers import Tokenizer

    tokenizer = Tokenizer.from_pretrained(tiny_checkpoint)
    batch = tokenizer(["hello world", "a much longer sentence than the first one", "fine"])
    return {k: np.asarray(v) for k, v in batch.items()}
