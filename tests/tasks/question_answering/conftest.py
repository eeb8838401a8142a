"""Shared setup of the question answering tests: fixture paths, tokenizers, window helpers."""

import functools
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURES

QA_DATA = Path(__file__).parent / "fixtures"
TOKENIZERS = ("bert_uncased", "bert_cased", "xlm_roberta")


@functools.lru_cache(maxsize=None)
def load_tokenizer(name: str, padding_side: str = "right"):
    from tfft.tokenizers import Tokenizer

    return Tokenizer.from_pretrained(FIXTURES / "tokenizers" / name, padding_side=padding_side)


@pytest.fixture(scope="session")
def squad():
    """Every fixture question (v1 then v2), as one `QAExamples` read from the flat JSON Lines file."""
    from tfft.tasks.question_answering.data import read_squad

    return read_squad(QA_DATA / "squad_flat.jsonl")


def context_spans(offsets: np.ndarray) -> list[tuple[int, int]]:
    """The (start, end) character offsets of a window's context tokens, in order."""
    return [tuple(map(int, o)) for o in offsets if o[0] >= 0]


def windows_of(features, example: int) -> list[int]:
    return [int(f) for f in np.flatnonzero(features.example_index == example)]
