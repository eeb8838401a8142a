"""The registry of PEFT methods: a method is one folder here with a config class and
`build_modules(config, table, model_name, source, saved) -> (config, {path: AdapterModule})`."""

import dataclasses
from collections.abc import Callable

from tfft.peft import bitfit, ia3, lora


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    config_class: type
    build_modules: Callable


METHODS = {
    m.name: m
    for m in (
        Method("lora", lora.LoraConfig, lora.build_modules),
        Method("ia3", ia3.IA3Config, ia3.build_modules),
        Method("bitfit", bitfit.BitFitConfig, bitfit.build_modules),
    )
}


def method_for_peft_type(peft_type):
    for method in METHODS.values():
        if method.config_class.peft_type == peft_type:
            return method
    return None
