"""AdaLoRA: LoRA in SVD form whose rank is allocated by importance during training; files in
Hugging Face PEFT's AdaLoRA format."""

from tfft.errors import ConfigError
from tfft.peft.adalora.allocator import AdaLoraCallback, budget_schedule
from tfft.peft.adalora.config import AdaLoraConfig
from tfft.peft.adalora.layer import AdaLoraModule
from tfft.peft.modules import require_dense, resolve_targets

DEFAULT_ROLES = ("query", "value")  # peft's AdaLoRA default for BERT, RoBERTa, XLM-R


def build_modules(config, table, model_name, source, saved):
    """`(config with target_modules resolved, {path: AdaLoraModule})`; a `rank_pattern` (from a
    file) sets which singular values each module keeps."""
    config, targets = resolve_targets(config, table, DEFAULT_ROLES, model_name, source)
    require_dense(targets, "peft.target_modules", source, "AdaLoRA", table)
    targets = [m for m in targets if m.path not in saved]
    pattern = config.rank_pattern or {}
    unknown = [key for key in pattern if key not in {f"{m.path}.lora_E" for m in targets}]
    if unknown:
        raise ConfigError(f"{source}: 'peft.rank_pattern': {', '.join(map(repr, unknown[:3]))} names no module "
                          "AdaLoRA adapts here; its keys are '<module path>.lora_E' of the peft.target_modules")
    # peft's regularizer is the mean over every A and B of the adapter: each module adds its share.
    orth_weight = config.orth_reg_weight / (2 * max(len(targets), 1))
    modules = {m.path: AdaLoraModule(m.layer, config, orth_weight, pattern.get(f"{m.path}.lora_E")) for m in targets}
    return config, modules


__all__ = ["AdaLoraCallback", "AdaLoraConfig", "AdaLoraModule", "budget_schedule", "build_modules"]
