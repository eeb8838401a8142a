"""The registry of PEFT methods: a method is one folder here with a config class and
`build_modules(config, table, model_name, source, saved) -> (config, {path: AdapterModule})`."""

import dataclasses
from collections.abc import Callable

from tfft.peft import adalora, bitfit, bottleneck, ia3, lora, p_tuning, prefix_tuning, prompt_tuning


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    config_class: type
    build_modules: Callable
    # Prompt learning (prefix, prompt, P-tuning): `build_modules(config, model, model_name, source,
    # initialize)` gives one module for the encoder's virtual-token slot (tfft.peft.virtual_tokens).
    at_encoder: bool = False


METHODS = {
    m.name: m
    for m in (
        Method("lora", lora.LoraConfig, lora.build_modules),
        Method("adalora", adalora.AdaLoraConfig, adalora.build_modules),
        Method("ia3", ia3.IA3Config, ia3.build_modules),
        Method("bitfit", bitfit.BitFitConfig, bitfit.build_modules),
        Method("houlsby", bottleneck.HoulsbyConfig, bottleneck.build_modules),
        Method("pfeiffer", bottleneck.PfeifferConfig, bottleneck.build_modules),
        Method("parallel", bottleneck.ParallelAdapterConfig, bottleneck.build_modules),
        Method("prefix_tuning", prefix_tuning.PrefixTuningConfig, prefix_tuning.build_modules, at_encoder=True),
        Method("prompt_tuning", prompt_tuning.PromptTuningConfig, prompt_tuning.build_modules, at_encoder=True),
        Method("p_tuning", p_tuning.PromptEncoderConfig, p_tuning.build_modules, at_encoder=True),
    )
}


def method_for_peft_type(peft_type, name=None):
    """The method of an adapter file's `peft_type`; of several sharing one (the bottleneck
    presets' TFFT_BOTTLENECK), the one the file's `method` names."""
    matches = [m for m in METHODS.values() if m.config_class.peft_type == peft_type]
    return next((m for m in matches if m.name == name), matches[0] if matches else None)
