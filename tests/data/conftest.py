import pytest

from tests.conftest import FIXTURES

DATA = FIXTURES / "data"


@pytest.fixture(scope="session")
def tokenizer():
    from tfft.tokenizers import Tokenizer

    return Tokenizer.from_pretrained(FIXTURES / "tokenizers" / "bert_uncased")


def unpadded_rows(tokenizer, texts, text_pairs=None, max_length=None):
    """Each example's token ids, unpadded, straight from the tokenizer (the reference for the pipeline)."""
    batch = tokenizer(texts, text_pairs, max_length=max_length)
    return [tuple(ids[mask == 1]) for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]


def batch_rows(features):
    """The unpadded id rows of one batch from the pipeline."""
    ids, mask = features["input_ids"].numpy(), features["attention_mask"].numpy()
    return [tuple(r[m == 1]) for r, m in zip(ids, mask)]
