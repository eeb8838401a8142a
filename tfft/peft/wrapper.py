"""`AdaptedLayer`: a Dense or LayerNormalization with adapters, and the adapter parts every
method shares (`AdapterModule`, `SavedCopy` for `modules_to_save`, `BiasDelta`).

As peft does, a method replaces the base layer in its parent by a wrapper that holds the base
layer and one `AdapterModule` per adapter; the wrapper runs the active adapter's module, or the
base layer alone when adapters are disabled or the active one is merged into the base weights.
The wrapper shows the base layer's `kernel`, `bias`, `gamma` and `beta`, so the encoders'
weight tables (loading, `save_pretrained`) still see the base weights.
"""

import contextlib

import keras
import numpy as np
from keras import ops

from tfft.errors import CheckpointError


@contextlib.contextmanager
def _unlocked(layer):
    """Keras locks a built layer's sublayer tracking; adapters are added after build."""
    locked = layer._tracker.locked
    layer._tracker.unlock()
    try:
        yield
    finally:
        if locked:
            layer._tracker.lock()


def replace_sublayer(parent, attr, new):
    """Sets `parent.<attr> = new` in place of the layer there, at the same position in Keras's
    tracking (so variable order, and what `save_weights` writes, stay as they were)."""
    old = getattr(parent, attr)
    position = next(i for i, layer in enumerate(parent._layers) if layer is old)
    with _unlocked(parent):
        parent._tracker.untrack(old)
        setattr(parent, attr, new)
    layers = parent._layers
    if layers and layers[-1] is new:
        layers.insert(position, layers.pop())


def hf_layout(layer):
    """`{suffix: (variable, transpose)}` of a Dense or LayerNormalization in PyTorch's layout."""
    if isinstance(layer, keras.layers.Dense):
        return {"weight": (layer.kernel, True), "bias": (layer.bias, False)}
    return {"weight": (layer.gamma, False), "bias": (layer.beta, False)}


def base_bias(layer):
    return layer.bias if isinstance(layer, keras.layers.Dense) else layer.beta


def to_numpy(variable, transpose=False):
    value = np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)
    return np.ascontiguousarray(value.T if transpose else value)


def assign_array(variable, array, key, transpose=False):
    """Assigns a PyTorch-layout `array` (the adapter file's tensor `key`) to `variable`."""
    value = np.asarray(array).T if transpose else np.asarray(array)
    if tuple(value.shape) != tuple(variable.shape):
        expected = tuple(variable.shape)[::-1] if transpose else tuple(variable.shape)
        raise CheckpointError(f"adapter tensor '{key}' has shape {tuple(np.shape(array))}, this model needs {expected}")
    variable.assign(value.astype(keras.backend.standardize_dtype(variable.dtype)))


class AdapterModule(keras.layers.Layer):
    """One adapter's part at one module. A method subclasses it.

    `adapt(linear, x, training)` returns the module's output with the adapter, where `linear(x)`
    is the base layer's output before its activation (the wrapper applies it after); `merge(base)` folds
    the adapter into the base weights and `unmerge(base)` takes it out again;
    `hf_tensors(base)` gives `{suffix: array}` in the adapter file's layout (tensor
    `base_model.model.<path>.<suffix>`) and `assign_hf(base, tensors, prefix)` reads them back.
    """

    merges_into_base = True  # merged, the wrapper runs the base layer alone
    replaces_layer = False  # True: `adapt` computes the whole layer, activation included
    # The module's path in the adapter file's tensor names, when it is not the wrapped layer's
    # own (a bottleneck adapter at `...attention.output.LayerNorm` saves under `...attention.output`).
    file_path = None
    # Tensors named by their suffix alone, at the file's top level (prompt learning's `prompt_embeddings`).
    top_level_tensors = False

    def adapt_residual(self, norm, h, residual, training):
        """A block's `norm(residual + h)` with this adapter (see `tfft.encoders.layers.add_and_norm`).
        Modules on a block's LayerNorm that act on the sub-block output apart from its input
        (bottleneck adapters) override it; the others adapt the norm of the sum."""
        return self.adapt(norm, residual + h, training)

    def adapt(self, linear, x, training):
        raise NotImplementedError

    def merge(self, base):
        raise NotImplementedError

    def unmerge(self, base):
        raise NotImplementedError

    def hf_tensors(self, base):
        raise NotImplementedError

    def assign_hf(self, base, tensors, prefix):
        for suffix, (variable, transpose) in self.hf_variables().items():
            assign_array(variable, tensors[suffix], prefix + suffix, transpose)

    def hf_variables(self):
        """`{suffix: (variable, transpose)}` where the file's tensors are the variables as they are."""
        raise NotImplementedError


class SavedCopy(AdapterModule):
    """`modules_to_save`: the adapter's own full copy of a layer (the task head), trained in full.

    Starts as a copy of the base layer; the base layer itself stays as loaded, so disabling the
    adapters gives the base model's outputs exactly.
    """

    merges_into_base = False  # the copy runs in place of the base layer, at the same cost
    replaces_layer = True

    def __init__(self, base, **kwargs):
        super().__init__(dtype=base.dtype_policy, name="modules_to_save", **kwargs)
        self.copy = type(base).from_config(base.get_config())
        width = base.kernel.shape[0] if isinstance(base, keras.layers.Dense) else base.gamma.shape[0]
        self.copy.build((None, width))
        for mine, theirs in zip(self.copy.weights, base.weights):
            mine.assign(theirs)
        self.built = True

    def adapt(self, linear, x, training):
        return self.copy(x)

    def merge(self, base):
        pass

    def unmerge(self, base):
        pass

    def unload(self, base):
        """Copies the trained weights into the base layer (`merge_and_unload`)."""
        for theirs, mine in zip(base.weights, self.copy.weights):
            theirs.assign(mine)

    def hf_variables(self):
        return hf_layout(self.copy)

    def hf_tensors(self, base):
        return {suffix: to_numpy(v, t) for suffix, (v, t) in self.hf_variables().items()}


class BiasDelta(AdapterModule):
    """A trained change of a layer's bias (a LayerNormalization's beta), zero at the start:
    BitFit, and LoRA's `bias="all"` / `"lora_only"`.

    The file holds the bias the model uses (base + change), under the base layer's bias name,
    which is how peft saves a trained bias.
    """

    def __init__(self, base, suffix="bias", **kwargs):
        super().__init__(dtype=base.dtype_policy, name="bias_delta", **kwargs)
        self.suffix = suffix
        self.delta = self.add_weight(shape=tuple(base_bias(base).shape), initializer="zeros", name="bias")
        self.built = True

    def shift(self, y):
        return y + ops.cast(self.delta, y.dtype)

    def adapt(self, linear, x, training):
        return self.shift(linear(x))

    def merge(self, base):
        base_bias(base).assign_add(self.delta)

    def unmerge(self, base):
        base_bias(base).assign_sub(self.delta)

    def hf_tensors(self, base):
        return {self.suffix: to_numpy(base_bias(base)) + to_numpy(self.delta)}

    def assign_hf(self, base, tensors, prefix):
        value = np.asarray(tensors[self.suffix], dtype=np.float32)
        assign_array(self.delta, value - to_numpy(base_bias(base)), prefix + self.suffix)


class AdaptedLayer(keras.layers.Layer):
    """A base Dense or LayerNormalization plus one `AdapterModule` per adapter name."""

    def __init__(self, base_layer, **kwargs):
        super().__init__(name=base_layer.name, dtype=base_layer.dtype_policy, **kwargs)
        self.base_layer = base_layer
        self.adapters = {}
        self.active = None  # the adapter that runs; None: the base layer alone
        self.merged = None  # the adapter folded into the base weights, if any
        self._unmerged = None  # the base weights before the merge, restored exactly by unmerge
        self.built = True

    def merge(self, name):
        module = self.adapters[name]
        if module.merges_into_base:
            self._unmerged = [keras.ops.convert_to_numpy(v) for v in self.base_layer.weights]
            module.merge(self.base_layer)
        self.merged = name

    def unmerge(self):
        """Restores the base weights saved at merge time (bit for bit, where subtracting the
        update again would leave rounding error); a model reloaded merged subtracts instead."""
        module = self.adapters.get(self.merged)
        if self._unmerged is not None:
            for variable, value in zip(self.base_layer.weights, self._unmerged):
                variable.assign(value)
        elif module is not None and module.merges_into_base:
            module.unmerge(self.base_layer)
        self._unmerged = None
        self.merged = None

    def add(self, name, module):
        with _unlocked(self):
            self.adapters[name] = module

    def remove(self, name):
        with _unlocked(self):
            module = self.adapters.pop(name)
            self._tracker.untrack(module)
        if self.active == name:
            self.active = None

    # The base layer's weights, for the encoders' weight tables.
    @property
    def kernel(self):
        return self.base_layer.kernel

    @property
    def bias(self):
        return self.base_layer.bias

    @property
    def gamma(self):
        return self.base_layer.gamma

    @property
    def beta(self):
        return self.base_layer.beta

    # A block's LayerNorm is called as `norm(h, residual=x)` (tfft.encoders.layers.add_and_norm).
    takes_residual = True

    def call(self, inputs, training=None, residual=None):
        module = self.adapters.get(self.active) if self.active is not None else None
        if module is None or (self.merged == self.active and module.merges_into_base):
            return self.base_layer(inputs if residual is None else residual + inputs)
        if residual is not None:
            return module.adapt_residual(self.base_layer, inputs, residual, training)
        if module.replaces_layer:
            return module.adapt(self.base_layer, inputs, training)
        base = self.base_layer
        activation = getattr(base, "activation", None)
        if activation is None or activation is keras.activations.linear:
            return module.adapt(base, inputs, training)
        # A Dense with an activation (the pooler's tanh): the adapter acts before it, as in peft,
        # where the activation is a module of its own.
        return activation(module.adapt(lambda x: ops.matmul(x, ops.cast(base.kernel, x.dtype)) + ops.cast(base.bias, x.dtype), inputs, training))
