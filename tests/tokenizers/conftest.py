"""Session fixtures for the tokenizer tests (helpers live in tokenizer_parity.py; the real MiniLM
checkpoint comes from the `minilm_dir` fixture of tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.tokenizers.tokenizer_parity import corpus, pairs


@pytest.fixture(scope="session")
def texts() -> tuple[str, ...]:
    return corpus()


@pytest.fixture(scope="session")
def text_pairs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    return pairs()
