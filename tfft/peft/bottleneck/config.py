"""Bottleneck adapter configs: AdapterHub's `BnConfig` fields and its three presets' defaults."""

import dataclasses

from tfft.config import field
from tfft.errors import ConfigError
from tfft.peft.bottleneck.layer import INITS, NON_LINEARITIES
from tfft.peft.config import PeftConfig

SCALINGS = ("learned", "channel")


@dataclasses.dataclass
class BottleneckConfig(PeftConfig):
    """The fields of AdapterHub's `BnConfig` that tfft implements, with their meaning there.

    An adapter `f(z) = dropout(scaling · up(non_linearity(down(z))))` sits at a block's attention
    sub-block (`mh_adapter`) and/or feed-forward sub-block (`output_adapter`), where the block
    computes `LayerNorm(h + x)` (h: the sub-block's output after dropout, x: its input). A
    sequential adapter computes `f(z) + r`, then `LayerNorm(· + x)`, with z = h, or
    z = LayerNorm(h + x) when `original_ln_before`; r is set by `residual_before_ln`. A parallel one
    computes `LayerNorm(f(x) + h + x)`. Use a preset: `HoulsbyConfig`, `PfeifferConfig`,
    `ParallelAdapterConfig`.
    """

    peft_type = "TFFT_BOTTLENECK"
    mergeable = False  # the adapter adds layers: it stays in the graph, also exported

    mh_adapter: bool = field(False, help="An adapter at each block's attention sub-block.")
    output_adapter: bool = field(True, help="An adapter at each block's feed-forward sub-block.")
    reduction_factor: float = field(16.0, help="hidden size / bottleneck size (the bottleneck is "
                                               "int(hidden // reduction_factor), at least 1).")
    non_linearity: str = field("relu", help=f"The bottleneck's activation: {', '.join(NON_LINEARITIES)}.")
    original_ln_before: bool = field(
        False, help="Sequential adapters: the adapter's input is the block's LayerNorm(h + x) instead of h.")
    original_ln_after: bool = field(
        True, help="Apply the block's residual connection and LayerNorm to the adapter's output: LayerNorm(out + x).")
    residual_before_ln: bool | str = field(
        True, help="Sequential adapters: the residual around the adapter is h (true), the adapter's input "
                   "(false) or h + x ('post_add', with original_ln_before).")
    is_parallel: bool = field(False, help="The adapter reads the sub-block's input x, beside the sub-block.")
    scaling: float | str = field(
        1.0, help="Factor on the adapter's output: a number, 'learned' (one trained scalar) or 'channel' "
                  "(one trained factor per hidden unit), both starting at 1.")
    init_weights: str = field(
        "bert", help="AdapterHub's initializations: bert (both projections N(0, 0.02)), houlsby (both "
                     "truncated N(0, 0.01)), mam_adapter (down uniform ±1/sqrt(hidden), up zero); biases zero.")
    dropout: float = field(0.0, help="Dropout on the adapter's output, before the residual.")

    def check(self, source="peft"):
        for key in ("mh_adapter", "output_adapter", "original_ln_before", "original_ln_after", "is_parallel"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{source}: 'peft.{key}' must be true or false, got {getattr(self, key)!r}")
        if not (self.mh_adapter or self.output_adapter):
            raise ConfigError(f"{source}: 'peft.mh_adapter' and 'peft.output_adapter' are both false: no adapter")
        factor = self.reduction_factor
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor > 0:
            raise ConfigError(f"{source}: 'peft.reduction_factor' must be a positive number, got {factor!r}")
        if self.non_linearity not in NON_LINEARITIES:
            raise ConfigError(f"{source}: 'peft.non_linearity' must be one of {list(NON_LINEARITIES)}, "
                              f"got {self.non_linearity!r}")
        if self.residual_before_ln not in (True, False, "post_add"):
            raise ConfigError(f"{source}: 'peft.residual_before_ln' must be true, false or 'post_add', "
                              f"got {self.residual_before_ln!r}")
        if self.residual_before_ln == "post_add" and not self.original_ln_before:
            raise ConfigError(f"{source}: 'peft.residual_before_ln' = 'post_add' needs original_ln_before: true")
        if self.is_parallel and self.original_ln_before:
            raise ConfigError(f"{source}: 'peft.original_ln_before' applies to sequential adapters; "
                              "a parallel adapter (is_parallel: true) reads the sub-block's input")
        scaling = self.scaling
        if scaling not in SCALINGS and (isinstance(scaling, bool) or not isinstance(scaling, int | float)):
            raise ConfigError(f"{source}: 'peft.scaling' must be a number, 'learned' or 'channel', got {scaling!r}")
        if self.init_weights not in INITS:
            raise ConfigError(f"{source}: 'peft.init_weights' must be one of {list(INITS)}, got {self.init_weights!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ConfigError(f"{source}: 'peft.dropout' must be in [0, 1), got {self.dropout!r}")


def _default(name, value):
    """BottleneckConfig's field `name` with a preset's default (and the field's help)."""
    return field(value, help=BottleneckConfig.__dataclass_fields__[name].metadata["help"])


@dataclasses.dataclass
class HoulsbyConfig(BottleneckConfig):
    """Houlsby et al. (2019): an adapter after the attention and one after the feed-forward
    sub-block, on the sub-block's output: `LayerNorm(x + h + f(h))`. AdapterHub's
    `DoubleSeqBnConfig` ("double_seq_bn", alias "houlsby") but for the default init.

    Init: an untrained adapter should leave the model as it is (Houlsby et al.'s near-identity
    start). AdapterHub's default "bert" (both projections N(0, 0.02)) moves all-MiniLM-L6-v2's last
    hidden states by up to 0.15 before any training, the paper's "houlsby" (truncated N(0, 0.01))
    by 0.02; tfft's default "mam_adapter" (up-projection zero, as LoRA's B and AdapterHub's
    parallel preset) leaves them exactly as they were. The other two stay selectable.

    Example:
        >>> model.add_adapter("houlsby", HoulsbyConfig(reduction_factor=16))  # 2 · (2·d·d/16 + d/16 + d) per layer
    """

    method = "houlsby"
    mh_adapter: bool = _default("mh_adapter", True)
    output_adapter: bool = _default("output_adapter", True)
    reduction_factor: float = _default("reduction_factor", 16.0)
    non_linearity: str = _default("non_linearity", "swish")
    original_ln_before: bool = _default("original_ln_before", False)
    init_weights: str = _default("init_weights", "mam_adapter")


@dataclasses.dataclass
class PfeifferConfig(BottleneckConfig):
    """Pfeiffer et al. (2020): one adapter after the feed-forward sub-block, reading the block's
    LayerNorm output, with the sub-block's output as residual: `LayerNorm(f(LayerNorm(h + x)) + h + x)`.
    AdapterHub's `SeqBnConfig` ("seq_bn", alias "pfeiffer") but for the default init, "mam_adapter"
    (AdapterHub's "bert" moves all-MiniLM-L6-v2's hidden states by up to 0.24; see HoulsbyConfig).

    Example:
        >>> model.add_adapter("pfeiffer", PfeifferConfig())
    """

    method = "pfeiffer"
    mh_adapter: bool = _default("mh_adapter", False)
    output_adapter: bool = _default("output_adapter", True)
    reduction_factor: float = _default("reduction_factor", 16.0)
    non_linearity: str = _default("non_linearity", "relu")
    original_ln_before: bool = _default("original_ln_before", True)
    init_weights: str = _default("init_weights", "mam_adapter")


@dataclasses.dataclass
class ParallelAdapterConfig(BottleneckConfig):
    """He et al. (2021): one scaled adapter beside the feed-forward sub-block, reading its input:
    `LayerNorm(4 · f(x) + h + x)`. AdapterHub's `ParBnConfig` ("par_bn"), defaults and all: its
    "mam_adapter" init (up-projection zero) leaves the outputs exactly as they were.

    Example:
        >>> model.add_adapter("parallel", ParallelAdapterConfig(scaling="learned"))  # AdapterHub's "scaled_par_bn"
    """

    method = "parallel"
    mh_adapter: bool = _default("mh_adapter", False)
    output_adapter: bool = _default("output_adapter", True)
    reduction_factor: float = _default("reduction_factor", 2.0)
    non_linearity: str = _default("non_linearity", "relu")
    is_parallel: bool = _default("is_parallel", True)
    scaling: float | str = _default("scaling", 4.0)
    init_weights: str = _default("init_weights", "mam_adapter")
