"""`LoraConfig`: Hugging Face PEFT's LoRA fields and defaults."""

import dataclasses

from tfft.config import field
from tfft.errors import ConfigError
from tfft.peft.config import PeftConfig, positive_int


@dataclasses.dataclass
class LoraConfig(PeftConfig):
    """LoRA (Hu et al., 2021): `W x + (alpha / r) · B A dropout(x)` on the target Dense layers,
    A random and B zero at the start, so an untrained adapter changes nothing.

    Example:
        >>> model.add_adapter("sentiment", LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"]))
    """

    method = "lora"
    peft_type = "LORA"
    peft_defaults = {
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "use_dora": False,
        "lora_bias": False,
        "rank_pattern": {},
        "alpha_pattern": {},
        "layers_to_transform": None,
        "layers_pattern": None,
        "exclude_modules": None,
        "target_parameters": None,
        "trainable_token_indices": None,
        "layer_replication": None,
    }

    r: int = field(8, help="Rank of the update B·A.")
    lora_alpha: float = field(8, help="Scale: the update is multiplied by lora_alpha / r (/ sqrt(r) with use_rslora).")
    lora_dropout: float = field(0.0, help="Dropout on the LoRA branch's input only, as in peft.")
    target_modules: list[str] | str | None = field(
        None,
        help="Dense layers to adapt: names matching a module path or its last dotted parts "
             "(query, value, attention.output.dense, intermediate.dense, output.dense), or one regex "
             "over whole paths. Default query and value, as peft for BERT.",
    )
    use_rslora: bool = field(False, help="Rank-stabilized LoRA: scale by lora_alpha / sqrt(r).")
    bias: str = field("none", help="Biases that train too: none, those of the adapted layers, or all.",
                      choices=("none", "lora_only", "all"))

    def check(self, source="peft"):
        positive_int(self.r, "peft.r", source)
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"{source}: 'peft.lora_dropout' must be in [0, 1), got {self.lora_dropout!r}")
        if self.bias not in ("none", "lora_only", "all"):
            raise ConfigError(f"{source}: 'peft.bias' must be one of ['none', 'lora_only', 'all'], got {self.bias!r}")

    @property
    def scaling(self):
        return self.lora_alpha / (self.r**0.5 if self.use_rslora else self.r)
