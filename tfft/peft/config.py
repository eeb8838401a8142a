"""`PeftConfig`: the fields every parameter-efficient method shares, and reading a `peft:` section.

Each method's config is a dataclass subclass with a help string per field and Hugging Face
PEFT's field names and defaults. A YAML `peft:` section names its method:

    peft:
      method: lora
      r: 8
      lora_alpha: 16
      target_modules: [query, value]
"""

import dataclasses
from typing import ClassVar

from tfft.config import field
from tfft.errors import ConfigError


@dataclasses.dataclass
class PeftConfig:
    """Base of the method configs. `method` names the method (`lora`, `ia3`, `bitfit`)."""

    method: ClassVar[str] = ""
    # Hugging Face PEFT's `peft_type` where tfft reads and writes peft's own files; "" where peft
    # has no such method and the files are tfft's (same layout, `peft_type` "TFFT_<METHOD>").
    peft_type: ClassVar[str] = ""
    # peft's adapter_config.json fields for features tfft does not implement, with the value
    # that means "not used": written as such, and refused otherwise when reading a peft file.
    peft_defaults: ClassVar[dict] = {}
    # Whether the method folds into the base weights (`merge_and_unload` gives a plain model);
    # the others (bottleneck adapters, prefix and prompt tuning) stay in the graph, also exported.
    mergeable: ClassVar[bool] = True
    # peft's prompt learning (prefix, prompt, P-tuning): the file's own tensor is the top-level
    # `prompt_embeddings` and the head copies sit under `base_model.` (not `base_model.model.`).
    is_prompt_learning: ClassVar[bool] = False

    modules_to_save: list[str] | None = field(
        None,
        help="Modules trained in full and saved with the adapter, each adapter with its own copy. "
             "The task head (classifier, qa_outputs) is always one of them, as in peft.",
    )

    def check(self, source="peft"):
        """Raises ConfigError naming the key of a value that is out of range."""

    def to_dict(self):
        return {"method": self.method, **dataclasses.asdict(self)}


def positive_int(value, key, source):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{source}: '{key}' must be a positive integer, got {value!r}")


def parse_peft_config(values, source="config"):
    """A method config from a `peft:` mapping (`method:` plus that method's fields), or from a config object."""
    from tfft.config import _from_dict
    from tfft.peft.methods import METHODS

    if isinstance(values, PeftConfig):
        values.check(source)
        return values
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: 'peft' must be a mapping with a 'method' key, got {values!r}")
    values = dict(values)
    name = values.pop("method", None)
    if name not in METHODS:
        raise ConfigError(f"{source}: 'peft.method' must be one of {sorted(METHODS)}, got {name!r}")
    config = _from_dict(METHODS[name].config_class, values, source, prefix="peft.")
    config.check(source)
    return config


def peft_json_fields(config):
    """The config's fields as peft's adapter_config.json holds them; tfft's own formats (peft_type
    TFFT_*) also name the `method`, as several methods can share one (the bottleneck presets)."""
    values = dataclasses.asdict(config)
    own = {"method": config.method} if config.peft_type.startswith("TFFT_") else {}
    return {**own, **type(config).peft_defaults, **values}


def config_from_peft_json(config_class, values, source):
    """A method config from adapter_config.json: its own fields; peft features tfft does not
    implement must have their default value."""
    for key, default in config_class.peft_defaults.items():
        if key in values and values[key] not in (default, None) and not (values[key] == [] and default is None):
            raise ConfigError(f"{source}: '{key}' = {values[key]!r} is not supported by tfft (only {default!r})")
    names = {f.name for f in dataclasses.fields(config_class)}
    config = config_class(**{k: v for k, v in values.items() if k in names})
    config.check(source)
    return config
