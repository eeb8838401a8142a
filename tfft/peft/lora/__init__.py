"""LoRA: low-rank updates of Dense kernels; files in Hugging Face PEFT's LoRA format."""

from tfft.peft.lora.config import LoraConfig
from tfft.peft.lora.layer import LoraModule
from tfft.peft.modules import require_dense, resolve_targets
from tfft.peft.wrapper import BiasDelta

DEFAULT_ROLES = ("query", "value")  # peft's default for BERT, RoBERTa, XLM-R, ELECTRA


def build_modules(config, table, model_name, source, saved):
    """`(config with target_modules resolved, {path: AdapterModule})` for a model's module table;
    `saved` are the `modules_to_save` paths, which train in full instead."""
    config, targets = resolve_targets(config, table, DEFAULT_ROLES, model_name, source)
    require_dense(targets, "peft.target_modules", source, "LoRA", table)
    targets = [m for m in targets if m.path not in saved]
    modules = {m.path: LoraModule(m.layer, config.r, config.scaling, config.lora_dropout,
                                  train_bias=config.bias != "none") for m in targets}
    if config.bias == "all":
        for path, m in table.items():
            if path not in modules and path not in saved:
                modules[path] = BiasDelta(m.layer)
    return config, modules


__all__ = ["LoraConfig", "LoraModule", "build_modules"]
