"""`AdaLoraConfig`: Hugging Face PEFT's AdaLoRA fields and defaults."""

import dataclasses

from tfft.config import field
from tfft.errors import ConfigError
from tfft.peft.config import PeftConfig, positive_int
from tfft.peft.lora.config import LoraConfig


def _non_negative_int(value, key, source):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{source}: '{key}' must be a non-negative integer, got {value!r}")


@dataclasses.dataclass
class AdaLoraConfig(PeftConfig):
    """AdaLoRA (Zhang et al., 2023): LoRA in SVD form, `W x + B diag(E) A x · lora_alpha / init_r`,
    whose singular values `E` are pruned during training from `init_r` per module to a total
    budget of `target_r` per module, keeping the triplets (a row of A, a value of E, a column of
    B) of highest importance wherever they are: the modules end with different ranks.

    The schedule counts optimizer steps: `tinit` steps at full rank, a cubic fall of the budget
    until `total_step - tfinal`, where the rank pattern is frozen, and `tfinal` steps of training
    at that pattern. `fit` runs it (`tfft.peft.AdaLoraCallback`, added automatically); at its end
    the pattern is in `rank_pattern`, which the adapter files carry.

    Example:
        >>> model.add_adapter("sentiment", AdaLoraConfig(init_r=12, target_r=8, total_step=3000, tinit=200, tfinal=500))
    """

    method = "adalora"
    peft_type = "ADALORA"
    # LoRA's unsupported features, less `rank_pattern`, which AdaLoRA fills; AdaLoRA trains no biases.
    peft_defaults = {**{k: v for k, v in LoraConfig.peft_defaults.items() if k != "rank_pattern"}, "bias": "none"}

    init_r: int = field(12, help="Initial rank of every adapted module (singular values per module).")
    target_r: int = field(8, help="Average rank per module at the end of the budgeting phase.")
    tinit: int = field(0, help="Optimizer steps at full rank before the budget starts to fall.")
    tfinal: int = field(0, help="Optimizer steps at the end that train the frozen rank pattern.")
    deltaT: int = field(1, help="Steps between two rank allocations during the budgeting phase.")
    beta1: float = field(0.85, help="EMA coefficient of the sensitivity (|weight × gradient|).")
    beta2: float = field(0.85, help="EMA coefficient of the sensitivity's uncertainty.")
    orth_reg_weight: float = field(0.5, help="Weight of the orthogonality regularizer on A and B in the loss.")
    total_step: int | None = field(None, help="Optimizer steps of the whole training run (required).")
    lora_alpha: float = field(8, help="Scale: the update is multiplied by lora_alpha / init_r.")
    lora_dropout: float = field(0.0, help="Dropout on the adapter branch's input only, as in peft.")
    target_modules: list[str] | str | None = field(
        None,
        help="Dense layers to adapt, matched as in LoRA. Default query and value, as peft for BERT.",
    )
    rank_pattern: dict | None = field(
        None,
        help="The kept singular values, `{'<module path>.lora_E': [bool] * init_r}`: set by training, "
             "read from and written to the adapter files.",
    )

    def check(self, source="peft"):
        for key in ("init_r", "target_r", "deltaT"):
            positive_int(getattr(self, key), f"peft.{key}", source)
        for key in ("tinit", "tfinal"):
            _non_negative_int(getattr(self, key), f"peft.{key}", source)
        if self.target_r > self.init_r:
            raise ConfigError(f"{source}: 'peft.target_r' ({self.target_r}) must be at most "
                              f"peft.init_r ({self.init_r})")
        if self.total_step is None:
            raise ConfigError(f"{source}: 'peft.total_step' is required: the number of optimizer steps of the "
                              "training run, over which AdaLoRA's rank budget falls")
        positive_int(self.total_step, "peft.total_step", source)
        if self.tinit >= self.total_step - self.tfinal:
            raise ConfigError(f"{source}: 'peft.tinit' ({self.tinit}) must be below peft.total_step - peft.tfinal "
                              f"({self.total_step - self.tfinal}): the schedule leaves no budgeting phase")
        for key in ("beta1", "beta2"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ConfigError(f"{source}: 'peft.{key}' must be in (0, 1), got {getattr(self, key)!r}")
        if self.orth_reg_weight < 0:
            raise ConfigError(f"{source}: 'peft.orth_reg_weight' must be >= 0, got {self.orth_reg_weight!r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"{source}: 'peft.lora_dropout' must be in [0, 1), got {self.lora_dropout!r}")
        for key, kept in (self.rank_pattern or {}).items():
            if not (isinstance(kept, list) and len(kept) == self.init_r and all(isinstance(k, bool) for k in kept)):
                raise ConfigError(f"{source}: 'peft.rank_pattern' entry {key!r} must be a list of "
                                  f"{self.init_r} (peft.init_r) booleans, got {kept!r}")

    @property
    def scaling(self):
        """peft's: lora_alpha, or init_r where lora_alpha is 0 (the update is divided by init_r)."""
        return self.lora_alpha if self.lora_alpha > 0 else float(self.init_r)

    def training_callbacks(self, adapter_name):
        """What `fit` needs for this adapter: the rank allocation."""
        from tfft.peft.adalora.allocator import AdaLoraCallback

        return [AdaLoraCallback(adapter_name)]
