"""`BottleneckModule`: one bottleneck adapter at a transformer block's sub-block LayerNorm."""

import math

import keras
from keras import ops

from tfft.encoders.layers import ACTIVATIONS, Dropout
from tfft.peft.wrapper import AdapterModule, to_numpy

# AdapterHub's names: transformers' activations (tfft's, where they coincide) and its own "leakyrelu".
NON_LINEARITIES = {
    **ACTIVATIONS,
    "leakyrelu": lambda x: keras.activations.leaky_relu(x, negative_slope=0.01),  # torch's slope
    "sigmoid": keras.activations.sigmoid,
}

INITS = ("bert", "houlsby", "mam_adapter")


def _inits(hidden):
    """AdapterHub's initializations: `{name: (down kernel, up kernel)}`; biases start at zero."""
    bound = 1.0 / math.sqrt(hidden)  # torch's kaiming_uniform_(a=sqrt(5)) of a Linear
    return {
        "bert": (keras.initializers.RandomNormal(stddev=0.02), keras.initializers.RandomNormal(stddev=0.02)),
        # torch's trunc_normal_(std=1e-2, a=-2e-2, b=2e-2): Keras's truncation is at two deviations too.
        "houlsby": (keras.initializers.TruncatedNormal(stddev=0.01), keras.initializers.TruncatedNormal(stddev=0.01)),
        "mam_adapter": (keras.initializers.RandomUniform(-bound, bound), "zeros"),
    }


class BottleneckModule(AdapterModule):
    """`f(z) = dropout(scaling · adapter_up(non_linearity(adapter_down(z))))` placed as AdapterHub
    places it (see `BottleneckConfig`); it stays in the graph (`merge` leaves it running).

    In the adapter file: `<file_path>.adapter_down.weight` `[bottleneck, hidden]`, `.adapter_down.bias`,
    `.adapter_up.weight` `[hidden, bottleneck]`, `.adapter_up.bias` and, when trained, `.scaling`
    (AdapterHub's `<module>.adapters.<name>.adapter_down.0.*`, `adapter_up.*`, `scaling`).
    """

    merges_into_base = False  # merged, it keeps running: nothing of it folds into the LayerNorm

    def __init__(self, base, file_path, config, **kwargs):
        super().__init__(dtype=base.dtype_policy, name="bottleneck", **kwargs)
        self.file_path = file_path
        hidden = base.gamma.shape[0]
        size = max(1, int(hidden // config.reduction_factor))
        down_init, up_init = _inits(hidden)[config.init_weights]
        self.adapter_down = keras.layers.Dense(size, kernel_initializer=down_init, name="adapter_down",
                                               dtype=self.dtype_policy)
        self.adapter_up = keras.layers.Dense(hidden, kernel_initializer=up_init, name="adapter_up",
                                             dtype=self.dtype_policy)
        self.adapter_down.build((None, hidden))
        self.adapter_up.build((None, size))
        self.non_linearity = NON_LINEARITIES[config.non_linearity]
        if config.scaling in ("learned", "channel"):
            shape = (1,) if config.scaling == "learned" else (hidden,)
            self.scaling = self.add_weight(shape=shape, initializer="ones", name="scaling")
        else:
            self.scaling = float(config.scaling)
        self.dropout = Dropout(config.dropout, dtype=self.dtype_policy) if config.dropout else None
        self.is_parallel = config.is_parallel
        self.original_ln_before = config.original_ln_before
        self.original_ln_after = config.original_ln_after
        self.residual_before_ln = config.residual_before_ln
        self.built = True

    def bottleneck(self, z, training):
        up = self.adapter_up(self.non_linearity(self.adapter_down(z)))
        up = up * ops.cast(self.scaling, up.dtype)
        return self.dropout(up, training=training) if self.dropout is not None else up

    def adapt_residual(self, norm, h, residual, training):
        """AdapterHub's `pre_forward`, `forward` and `post_forward` of one adapter (its
        `bottleneck_layer_forward`, as BERT's `BertSelfOutput` / `BertOutput` call it)."""
        if self.is_parallel:
            out = self.bottleneck(residual, training) + h
        else:
            z = norm(h + residual) if self.original_ln_before else h
            if self.residual_before_ln == "post_add":
                skip = h + residual
            else:
                skip = h if self.residual_before_ln else z
            out = self.bottleneck(z, training) + skip
        return norm(out + residual) if self.original_ln_after else out

    def hf_variables(self):
        variables = {
            "adapter_down.weight": (self.adapter_down.kernel, True),
            "adapter_down.bias": (self.adapter_down.bias, False),
            "adapter_up.weight": (self.adapter_up.kernel, True),
            "adapter_up.bias": (self.adapter_up.bias, False),
        }
        if not isinstance(self.scaling, float):
            variables["scaling"] = (self.scaling, False)
        return variables

    def hf_tensors(self, base):
        return {suffix: to_numpy(v, t) for suffix, (v, t) in self.hf_variables().items()}
