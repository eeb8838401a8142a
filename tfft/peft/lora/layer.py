"""`LoraModule`: LoRA's low-rank update of one Dense layer."""

import math

import keras
from keras import ops

from tfft.encoders.layers import Dropout
from tfft.peft.wrapper import AdapterModule, BiasDelta, to_numpy


class LoraModule(AdapterModule):
    """`base(x) + scaling · B(A(dropout(x)))`, with A `[in, r]` and B `[r, out]` Keras kernels.

    A starts as peft's `kaiming_uniform_(a=sqrt(5))` (uniform in ±1/sqrt(in)), B at zero. In the
    adapter file A and B are peft's `lora_A.weight` `[r, in]` and `lora_B.weight` `[out, r]`.
    """

    def __init__(self, base, r, scaling, dropout=0.0, train_bias=False, **kwargs):
        super().__init__(dtype=base.dtype_policy, name="lora", **kwargs)
        in_features, out_features = base.kernel.shape
        self.scaling = float(scaling)
        bound = 1.0 / math.sqrt(in_features)
        self.lora_A = keras.layers.Dense(r, use_bias=False, name="lora_A", dtype=self.dtype_policy,
                                         kernel_initializer=keras.initializers.RandomUniform(-bound, bound))
        self.lora_B = keras.layers.Dense(out_features, use_bias=False, kernel_initializer="zeros", name="lora_B",
                                         dtype=self.dtype_policy)
        self.lora_A.build((None, in_features))
        self.lora_B.build((None, r))
        self.dropout = Dropout(dropout, dtype=self.dtype_policy) if dropout else None
        # peft saves a LoRA layer's trained bias as `<path>.base_layer.bias`.
        self.bias_delta = BiasDelta(base, suffix="base_layer.bias") if train_bias else None
        self.built = True

    def adapt(self, linear, x, training):
        y = linear(x)
        h = self.dropout(x, training=training) if self.dropout is not None else x
        y = y + self.lora_B(self.lora_A(h)) * ops.cast(self.scaling, y.dtype)
        return self.bias_delta.shift(y) if self.bias_delta is not None else y

    def delta_kernel(self):
        return ops.matmul(self.lora_A.kernel, self.lora_B.kernel) * self.scaling

    def merge(self, base):
        base.kernel.assign_add(self.delta_kernel())
        if self.bias_delta is not None:
            self.bias_delta.merge(base)

    def unmerge(self, base):
        base.kernel.assign_sub(self.delta_kernel())
        if self.bias_delta is not None:
            self.bias_delta.unmerge(base)

    def hf_variables(self):
        return {"lora_A.weight": (self.lora_A.kernel, True), "lora_B.weight": (self.lora_B.kernel, True)}

    def hf_tensors(self, base):
        tensors = {suffix: to_numpy(v, t) for suffix, (v, t) in self.hf_variables().items()}
        if self.bias_delta is not None:
            tensors.update(self.bias_delta.hf_tensors(base))
        return tensors

    def assign_hf(self, base, tensors, prefix):
        super().assign_hf(base, tensors, prefix)
        if self.bias_delta is not None:
            self.bias_delta.assign_hf(base, tensors, prefix)
