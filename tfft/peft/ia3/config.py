"""`IA3Config`: Hugging Face PEFT's IA3 fields and defaults."""

import dataclasses

from tfft.config import field
from tfft.peft.config import PeftConfig


@dataclasses.dataclass
class IA3Config(PeftConfig):
    """IA3 (Liu et al., 2022): learned vectors that rescale the keys, the values and the
    feed-forward activations, all ones at the start.

    Example:
        >>> model.add_adapter("ia3", IA3Config())   # keys, values, the feed-forward inputs of output.dense
    """

    method = "ia3"
    peft_type = "IA3"
    peft_defaults = {"fan_in_fan_out": False, "init_ia3_weights": True, "exclude_modules": None}

    target_modules: list[str] | str | None = field(
        None,
        help="Dense layers to rescale, matched as in LoRA. Default the keys, the values and the "
             "attention and feed-forward output layers (peft's BERT default: key, value, output.dense).",
    )
    feedforward_modules: list[str] | str | None = field(
        None,
        help="Of the targets, those whose input is rescaled (feed-forward activations) rather than "
             "their output. Default the attention and feed-forward output layers (peft: output.dense).",
    )
