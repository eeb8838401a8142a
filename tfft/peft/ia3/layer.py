"""`IA3Module`: IA3's learned rescaling of one Dense layer's output, or of its input."""

from keras import ops

from tfft.peft.wrapper import AdapterModule, to_numpy


class IA3Module(AdapterModule):
    """`base(x) * l` (keys, values) or, for a feed-forward module, `base(x * l)`; `l` starts at ones.

    In the adapter file `l` is peft's `ia3_l`, `[out, 1]` or, feed-forward, `[1, in]`.
    """

    def __init__(self, base, feedforward, **kwargs):
        super().__init__(dtype=base.dtype_policy, name="ia3", **kwargs)
        in_features, out_features = base.kernel.shape
        self.feedforward = bool(feedforward)
        size = in_features if self.feedforward else out_features
        self.scale = self.add_weight(shape=(size,), initializer="ones", name="ia3_l")
        self.built = True

    def adapt(self, linear, x, training):
        if self.feedforward:
            return linear(x * ops.cast(self.scale, x.dtype))
        y = linear(x)
        return y * ops.cast(self.scale, y.dtype)

    def merge(self, base):
        if self.feedforward:
            base.kernel.assign(base.kernel * self.scale[:, None])
        else:
            base.kernel.assign(base.kernel * self.scale[None, :])
            base.bias.assign(base.bias * self.scale)

    def unmerge(self, base):
        if self.feedforward:
            base.kernel.assign(base.kernel / self.scale[:, None])
        else:
            base.kernel.assign(base.kernel / self.scale[None, :])
            base.bias.assign(base.bias / self.scale)

    def hf_variables(self):
        return {"ia3_l": (self.scale, False)}

    def hf_tensors(self, base):
        value = to_numpy(self.scale)
        return {"ia3_l": value[None, :] if self.feedforward else value[:, None]}

    def assign_hf(self, base, tensors, prefix):
        from tfft.peft.wrapper import assign_array

        value = tensors["ia3_l"]
        expected = (1, self.scale.shape[0]) if self.feedforward else (self.scale.shape[0], 1)
        if tuple(value.shape) != expected:
            from tfft.errors import CheckpointError

            raise CheckpointError(f"adapter tensor '{prefix}ia3_l' has shape {tuple(value.shape)}, this model needs {expected}")
        assign_array(self.scale, value.reshape(-1), prefix + "ia3_l")
