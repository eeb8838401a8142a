"""`AdaLoraModule`: AdaLoRA's SVD-form update of one Dense layer, with the importance state
its rank allocation reads."""

import keras
import numpy as np
from keras import ops

from tfft.encoders.layers import Dropout
from tfft.errors import CheckpointError
from tfft.peft.wrapper import AdapterModule, assign_array, to_numpy


class Orthogonality(keras.regularizers.Regularizer):
    """`weight · ||P Pᵀ − I||_F` over the rank axis of a kernel: peft's orthogonality term of
    lora_A (P, `[r, in]`; the Keras kernel is `[in, r]`) or lora_B (Q, `[out, r]`: `Qᵀ Q`).

    As a Keras weight regularizer it is in every loss Keras computes while the kernel trains
    (training and evaluation, as peft adds it to every loss its forward returns), computed in
    float32 also under mixed precision, where the layer's own call would see float16 weights.
    """

    def __init__(self, weight, rank_axis):
        self.weight = float(weight)
        self.rank_axis = rank_axis

    def __call__(self, kernel):
        k = ops.convert_to_tensor(kernel)
        gram = ops.matmul(ops.transpose(k), k) if self.rank_axis == 1 else ops.matmul(k, ops.transpose(k))
        return self.weight * ops.norm(gram - ops.eye(gram.shape[0], dtype=gram.dtype))

    def get_config(self):
        return {"weight": self.weight, "rank_axis": self.rank_axis}


class AdaLoraModule(AdapterModule):
    """`base(x) + B(E · A(dropout(x))) · scaling / (ranknum + 1e-5)`, as peft's `SVDLinear`.

    A `[in, r]` and B `[r, out]` are Keras kernels, E `[r]` the singular values; peft's
    `lora_A` `[r, in]`, `lora_B` `[out, r]` and `lora_E` `[r, 1]` in the adapter file. A and B
    start normal with std 0.02 and E at zero (peft's init), so an untrained adapter changes
    nothing. `ranknum` stays `init_r`, as in peft, where it is not saved and survives the
    resizing by a rank pattern: pruning E entries never rescales the others.

    Beside the parameters the module keeps, as non-trainable `state_variables`, peft's
    `RankAllocator` state for A, E and B (the EMAs of the sensitivity |p · grad| and of its
    uncertainty) and `rank_mask`, the kept singular values. The file holds only the kept ones
    (peft's resizing by `rank_pattern`); a masked entry is zero in A, E and B once loaded.
    """

    def __init__(self, base, config, orth_weight, kept=None, **kwargs):
        super().__init__(dtype=base.dtype_policy, name="adalora", **kwargs)
        in_features, out_features = base.kernel.shape
        r = config.init_r
        self.ranknum = float(r)
        self.scaling = float(config.scaling)
        self.beta1, self.beta2 = float(config.beta1), float(config.beta2)
        # peft stops updating the importance when the rank pattern is frozen.
        self.observe_until = config.total_step - config.tfinal
        normal = keras.initializers.RandomNormal(stddev=0.02)
        # orth_weight: this module's share of peft's mean over every A and B of the adapter.
        self.lora_A = keras.layers.Dense(r, use_bias=False, kernel_initializer=normal, name="lora_A",
                                         kernel_regularizer=Orthogonality(orth_weight, 1) if orth_weight else None,
                                         dtype=self.dtype_policy)
        self.lora_B = keras.layers.Dense(out_features, use_bias=False, kernel_initializer=normal, name="lora_B",
                                         kernel_regularizer=Orthogonality(orth_weight, 0) if orth_weight else None,
                                         dtype=self.dtype_policy)
        self.lora_A.build((None, in_features))
        self.lora_B.build((None, r))
        self.lora_E = self.add_weight(shape=(r,), initializer="zeros", name="lora_E")
        self.dropout = Dropout(config.lora_dropout, dtype=self.dtype_policy) if config.lora_dropout else None
        # Per parameter (A, E, B): the EMA of its sensitivity and the EMA of its uncertainty.
        self.averages = [[self.add_weight(shape=tuple(p.shape), initializer="zeros", trainable=False,
                                          aggregation="only_first_replica", name=f"{kind}_{name}")
                          for kind in ("exp_avg_ipt", "exp_avg_unc")]
                         for name, p in zip("AEB", self.parameters())]
        self.rank_mask = self.add_weight(shape=(r,), initializer="ones", trainable=False,
                                         aggregation="only_first_replica", name="rank_mask")
        if kept is not None:
            self.rank_mask.assign(np.asarray(kept, dtype="float32"))
        self.state_variables = [v for pair in self.averages for v in pair] + [self.rank_mask]
        self.built = True

    def parameters(self):
        return self.lora_A.kernel, self.lora_E, self.lora_B.kernel

    # --- the update ---------------------------------------------------------------------------

    def adapt(self, linear, x, training):
        y = linear(x)
        h = self.dropout(x, training=training) if self.dropout is not None else x
        h = self.lora_A(h) * ops.cast(self.lora_E, h.dtype)
        return y + self.lora_B(h) * ops.cast(self.scaling / (self.ranknum + 1e-5), y.dtype)

    def delta_kernel(self):
        scale = self.scaling / (self.ranknum + 1e-5)
        return ops.matmul(self.lora_A.kernel * self.lora_E[None, :], self.lora_B.kernel) * scale

    def merge(self, base):
        base.kernel.assign_add(self.delta_kernel())

    def unmerge(self, base):
        base.kernel.assign_sub(self.delta_kernel())

    # --- importance (peft's RankAllocator, in the graph) --------------------------------------

    def observe_gradients(self, gradients, step, finite):
        """Updates the importance EMAs from one training step, as peft's `update_ipt` after
        `optimizer.step()`: `ipt = |p · grad|` with `p` as updated. `gradients` maps `id(variable)`
        to its unscaled gradient; `step` is peft's global step of this update. A step the optimizer
        skips (`finite` false: mixed float16's loss scale overflowed) leaves them unchanged.

        With tfft's AdamW accumulating `k` micro-batches per update, the EMAs take one step per
        micro-batch, from that micro-batch's gradient and the parameters as they are then, where
        peft's take one per update from the summed gradient.
        """
        update = ops.logical_and(finite, step < self.observe_until)
        for parameter, (ipt_average, unc_average) in zip(self.parameters(), self.averages):
            ipt = ops.abs(parameter * gradients[id(parameter)])
            new_ipt = self.beta1 * ipt_average + (1 - self.beta1) * ipt
            new_unc = self.beta2 * unc_average + (1 - self.beta2) * ops.abs(ipt - new_ipt)
            ipt_average.assign(ops.where(update, new_ipt, ipt_average))
            unc_average.assign(ops.where(update, new_unc, unc_average))

    def triplet_scores(self):
        """`[r]`: each singular value's score plus the mean scores of its row of A and its column
        of B (peft's `mask_to_budget`), a score being sensitivity EMA × uncertainty EMA."""
        (ipt_a, unc_a), (ipt_e, unc_e), (ipt_b, unc_b) = self.averages
        return ipt_e * unc_e + (ops.mean(ipt_a * unc_a, axis=0) + ops.mean(ipt_b * unc_b, axis=1))

    def keep(self, kept):
        """Zeroes the singular values not `kept` (bool `[r]`) and records the mask."""
        self.lora_E.assign(ops.where(kept, self.lora_E, ops.zeros_like(self.lora_E)))
        self.rank_mask.assign(ops.cast(kept, "float32"))

    def reset_importance(self):
        for pair in self.averages:
            for average in pair:
                average.assign(ops.zeros_like(average))

    # --- adapter files --------------------------------------------------------------------------

    def kept(self):
        return to_numpy(self.rank_mask) > 0

    def hf_tensors(self, base):
        kept = self.kept()
        return {"lora_A": to_numpy(self.lora_A.kernel, True)[kept],
                "lora_E": to_numpy(self.lora_E)[kept][:, None],
                "lora_B": to_numpy(self.lora_B.kernel, True)[:, kept]}

    def assign_hf(self, base, tensors, prefix):
        """Reads the kept triplets into their places; the masked ones are zero."""
        kept = self.kept()
        rank, (in_features, r), out_features = int(kept.sum()), self.lora_A.kernel.shape, self.lora_B.kernel.shape[1]
        expected = {"lora_A": (rank, in_features), "lora_E": (rank, 1), "lora_B": (out_features, rank)}
        for suffix, shape in expected.items():
            if tuple(np.shape(tensors[suffix])) != shape:
                raise CheckpointError(f"adapter tensor '{prefix}{suffix}' has shape {tuple(np.shape(tensors[suffix]))}"
                                      f", this model needs {shape} (rank {rank} of init_r {r} by the rank pattern)")
        a, e, b = np.zeros((r, in_features)), np.zeros(r), np.zeros((out_features, r))
        a[kept], e[kept], b[:, kept] = tensors["lora_A"], tensors["lora_E"][:, 0], tensors["lora_B"]
        assign_array(self.lora_A.kernel, a, prefix + "lora_A", transpose=True)
        assign_array(self.lora_E, e, prefix + "lora_E")
        assign_array(self.lora_B.kernel, b, prefix + "lora_B", transpose=True)
