"""IA3: learned rescaling vectors; files in Hugging Face PEFT's IA3 format."""

import dataclasses

from tfft.errors import ConfigError
from tfft.peft.ia3.config import IA3Config
from tfft.peft.ia3.layer import IA3Module
from tfft.peft.modules import require_dense, resolve_targets, select_modules, short_names

# peft's BERT/RoBERTa default: key, value, output.dense, with output.dense (which also names
# the attention output) feed-forward.
DEFAULT_ROLES = ("key", "value", "attention_output", "output")
DEFAULT_FEEDFORWARD_ROLES = ("attention_output", "output")


def build_modules(config, table, model_name, source, saved):
    config, targets = resolve_targets(config, table, DEFAULT_ROLES, model_name, source)
    if config.feedforward_modules is None:
        feedforward = [m for m in targets if m.role in DEFAULT_FEEDFORWARD_ROLES]
        config = dataclasses.replace(config, feedforward_modules=short_names(feedforward))
    else:
        feedforward = select_modules(config.feedforward_modules, table, "peft.feedforward_modules", source,
                                     model_name)
    outside = [m.path for m in feedforward if m not in targets]
    if outside:
        raise ConfigError(f"{source}: 'peft.feedforward_modules' must be among peft.target_modules; "
                          f"{', '.join(outside[:3])} is not")
    require_dense(targets, "peft.target_modules", source, "IA3", table)
    feedforward_paths = {m.path for m in feedforward}
    modules = {m.path: IA3Module(m.layer, m.path in feedforward_paths) for m in targets if m.path not in saved}
    return config, modules


__all__ = ["IA3Config", "IA3Module", "build_modules"]
