"""P-tuning: soft prompts from a trained prompt encoder; files in Hugging Face PEFT's format."""

import dataclasses

from tfft.peft.p_tuning.config import PromptEncoderConfig
from tfft.peft.p_tuning.layer import BidirectionalLSTM, PromptEncoder
from tfft.peft.virtual_tokens import SLOT


def build_modules(config, model, model_name, source, initialize=True):
    """`(config with the encoder's sizes, {SLOT: PromptEncoder})`."""
    encoder = model.encoder
    c = encoder.config
    config = config.resolved(source, model_name, token_dim=encoder.embeddings.embedding_size,
                             num_layers=c.num_layers, num_attention_heads=c.num_heads)
    if config.encoder_hidden_size is None:
        config = dataclasses.replace(config, encoder_hidden_size=config.token_dim)
    return config, {SLOT: PromptEncoder(config, dtype=encoder.dtype_policy)}


__all__ = ["BidirectionalLSTM", "PromptEncoder", "PromptEncoderConfig", "build_modules"]
