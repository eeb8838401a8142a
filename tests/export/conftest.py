import pytest

from tests.conftest import FIXTURES
from tfft.encoders import BertEncoder, EncoderConfig
from tfft.tokenizers import Tokenizer


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A random-init BERT small enough for CPU tests, with the 4000-token fixture tokenizer."""
    path = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = Tokenizer.from_pretrained(FIXTURES / "tokenizers" / "bert_uncased")
    config = EncoderConfig(model_type="bert", vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2,
                           num_heads=4, intermediate_size=64, max_position_embeddings=128)
    BertEncoder(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
