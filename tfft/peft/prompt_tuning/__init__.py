"""Prompt tuning: trained soft prompts before the word embeddings; files in Hugging Face PEFT's format."""

import dataclasses
import math

import keras
import numpy as np

from tfft.errors import ConfigError
from tfft.peft.prompt_tuning.config import PromptTuningConfig
from tfft.peft.prompt_tuning.layer import PromptEmbedding
from tfft.peft.virtual_tokens import SLOT


def build_modules(config, model, model_name, source, initialize=True):
    """`(config with the encoder's sizes, {SLOT: PromptEmbedding})`, initialized as `prompt_tuning_init` says."""
    encoder = model.encoder
    c = encoder.config
    config = config.resolved(source, model_name, token_dim=encoder.embeddings.embedding_size,
                             num_layers=c.num_layers, num_attention_heads=c.num_heads)
    rows = None
    if initialize and not config.inference_mode and config.prompt_tuning_init != "RANDOM":
        if config.prompt_tuning_init == "TEXT":
            tokenizer = _tokenizer(config, model, source)
            rows = _repeat_to(tokenizer.hf_tokenizer(config.prompt_tuning_init_text)["input_ids"],
                              config.num_virtual_tokens)
            if config.tokenizer_name_or_path is None and tokenizer.directory is not None:
                config = dataclasses.replace(config, tokenizer_name_or_path=str(tokenizer.directory))
        else:  # SAMPLE_VOCAB
            rows = keras.random.randint((config.num_virtual_tokens,), 0, c.vocab_size)
    module = PromptEmbedding(config, dtype=encoder.dtype_policy)
    if rows is not None:
        table = keras.ops.take(encoder.embeddings.word_embeddings.embeddings, keras.ops.convert_to_tensor(rows), axis=0)
        module.embedding.assign(keras.ops.cast(table, module.embedding.dtype))
    return config, {SLOT: module}


def _tokenizer(config, model, source):
    from tfft.tokenizers import Tokenizer

    if config.tokenizer_name_or_path is not None:
        kwargs = {k: v for k, v in (config.tokenizer_kwargs or {}).items() if k != "trust_remote_code"}
        return Tokenizer.from_pretrained(config.tokenizer_name_or_path, **kwargs)
    if model.tokenizer is None:
        raise ConfigError(
            f"{source}: 'peft.prompt_tuning_init' TEXT tokenizes 'peft.prompt_tuning_init_text' with the model's "
            f"tokenizer, and this model has none: load it with from_pretrained(..., tokenizer=True), set "
            f"model.tokenizer, or give 'peft.tokenizer_name_or_path'")
    return model.tokenizer


def _repeat_to(token_ids, n):
    """peft's rule: the text's token ids cut to `n`, or repeated until there are `n`."""
    token_ids = list(token_ids)
    return np.asarray((token_ids * math.ceil(n / len(token_ids)))[:n], dtype=np.int32)


__all__ = ["PromptEmbedding", "PromptTuningConfig", "build_modules"]
