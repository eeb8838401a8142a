"""Prefix tuning: trained key/value prefixes at every layer; files in Hugging Face PEFT's format."""

import dataclasses

from tfft.peft.prefix_tuning.config import PrefixTuningConfig
from tfft.peft.prefix_tuning.layer import PrefixEncoder
from tfft.peft.virtual_tokens import SLOT


def build_modules(config, model, model_name, source, initialize=True):
    """`(config with the encoder's sizes, {SLOT: PrefixEncoder})`."""
    c = model.encoder.config
    config = config.resolved(source, model_name, token_dim=c.hidden_size, num_layers=c.num_layers,
                             num_attention_heads=c.num_heads)
    if config.encoder_hidden_size is None:
        config = dataclasses.replace(config, encoder_hidden_size=config.token_dim)
    return config, {SLOT: PrefixEncoder(config, dtype=model.encoder.dtype_policy)}


__all__ = ["PrefixEncoder", "PrefixTuningConfig", "build_modules"]
