"""Tokenizers: HF fast tokenizers on the host and id-for-id equal in-graph Keras layers."""

from tfft.tokenizers.tokenizer import Tokenizer

__all__ = ["Tokenizer"]
