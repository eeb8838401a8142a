"""Bottleneck adapters (Houlsby, Pfeiffer, parallel) as AdapterHub's `adapters` library defines them.

peft has no bottleneck adapters; tfft's files have peft's layout: `adapter_config.json` with
`peft_type: TFFT_BOTTLENECK` and the preset's `method`, and `adapter_model.safetensors` with
each adapter's tensors under its sub-block, PyTorch `[out, in]` layouts
(`base_model.model.bert.encoder.layer.0.attention.output.adapter_down.weight`, `...layer.0.output.adapter_up.bias`).
Where a sub-block's LayerNorm is not named `LayerNorm` (DistilBERT's `sa_layer_norm`, ALBERT's
`full_layer_layer_norm`), the tensors sit under the LayerNorm's own path.
"""

from tfft.peft.bottleneck.config import BottleneckConfig, HoulsbyConfig, ParallelAdapterConfig, PfeifferConfig
from tfft.peft.bottleneck.layer import BottleneckModule
from tfft.peft.modules import by_role


def build_modules(config, table, model_name, source, saved):
    """One adapter at each block's attention LayerNorm (`mh_adapter`) and/or feed-forward
    LayerNorm (`output_adapter`); ALBERT's shared block gets one, shared by its layers."""
    roles = [role for role, on in (("attention_norm", config.mh_adapter), ("output_norm", config.output_adapter))
             if on]
    modules = {m.path: BottleneckModule(m.layer, m.path.removesuffix(".LayerNorm"), config)
               for m in by_role(table, roles) if m.path not in saved}
    return config, modules


__all__ = ["BottleneckConfig", "BottleneckModule", "HoulsbyConfig", "ParallelAdapterConfig", "PfeifferConfig",
           "build_modules"]
