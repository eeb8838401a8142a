"""BitFit (Ben Zaken et al., 2022): only the biases (and the task head) train.

peft has no BitFit; tfft's files have peft's layout: `adapter_config.json` with
`peft_type: TFFT_BITFIT`, and `adapter_model.safetensors` with the trained biases under the
base model's own names (`base_model.model.bert.encoder.layer.0.attention.self.query.bias`), so
a PyTorch user can load them with `load_state_dict(..., strict=False)` after dropping the prefix.
"""

import dataclasses

from tfft.config import field
from tfft.errors import ConfigError
from tfft.peft.config import PeftConfig
from tfft.peft.modules import by_role
from tfft.peft.wrapper import BiasDelta

VARIANT_ROLES = {
    "all": None,
    # The paper's smallest variant: the query and first feed-forward biases.
    "query_intermediate": ("query", "intermediate"),
}


@dataclasses.dataclass
class BitFitConfig(PeftConfig):
    """Trains a change of every bias (Dense biases and LayerNorm betas), zero at the start.

    Example:
        >>> model.add_adapter("bitfit", BitFitConfig(variant="query_intermediate"))
    """

    method = "bitfit"
    peft_type = "TFFT_BITFIT"

    variant: str = field("all", help="all: every Dense and LayerNorm bias; query_intermediate: the query "
                                     "and intermediate (first feed-forward) biases only.",
                         choices=tuple(VARIANT_ROLES))

    def check(self, source="peft"):
        if self.variant not in VARIANT_ROLES:
            raise ConfigError(f"{source}: 'peft.variant' must be one of {list(VARIANT_ROLES)}, got {self.variant!r}")


def build_modules(config, table, model_name, source, saved):
    roles = VARIANT_ROLES[config.variant]
    modules = table.values() if roles is None else by_role(table, roles)
    return config, {m.path: BiasDelta(m.layer) for m in modules if m.path not in saved}


__all__ = ["BitFitConfig", "build_modules"]
