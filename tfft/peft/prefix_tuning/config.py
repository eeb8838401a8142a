"""`PrefixTuningConfig`: Hugging Face PEFT's prefix-tuning fields and defaults."""

import dataclasses

from tfft.config import field
from tfft.errors import ConfigError
from tfft.peft.config import positive_int
from tfft.peft.virtual_tokens import PromptLearningConfig


@dataclasses.dataclass
class PrefixTuningConfig(PromptLearningConfig):
    """Prefix tuning (Li & Liang, 2021; P-tuning v2): every layer's attention also sees keys and
    values for `num_virtual_tokens` trained positions before the tokens; the tokens' positions
    start after them, as transformers counts from a cache.

    Example:
        >>> model.add_adapter("prefix", PrefixTuningConfig(num_virtual_tokens=20))
    """

    method = "prefix_tuning"
    peft_type = "PREFIX_TUNING"

    encoder_hidden_size: int | None = field(None, help="Hidden width of the prefix_projection MLP; default token_dim.")
    prefix_projection: bool = field(
        False,
        help="Train an embedding [n, hidden] through Linear-Tanh-Linear to the prefixes instead of the "
             "prefixes themselves; the file holds the prefixes it gives.",
    )
    init_weights: str | None = field(
        None, help="None: random prefixes (N(0, 1)); zero: zero keys and values (the last projection layer "
                   "zero with prefix_projection).", choices=(None, "zero"))

    def check(self, source="peft"):
        super().check(source)
        if self.encoder_hidden_size is not None:
            positive_int(self.encoder_hidden_size, "peft.encoder_hidden_size", source)
        if self.init_weights not in (None, "zero"):
            raise ConfigError(f"{source}: 'peft.init_weights' must be null or 'zero', got {self.init_weights!r}")
