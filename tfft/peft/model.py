"""`Adapters`: the PEFT state of one task model (`model.add_adapter` creates it).

It attaches methods to the model's modules, freezes the base, keeps several named adapters
with one active, disables, deletes, merges and unmerges them, and counts parameters. Only the
active adapter's variables are trainable; every weight the model had before its first adapter
stays frozen, so disabling the adapters gives the base model's outputs exactly.
"""

import contextlib
import dataclasses
import logging

import keras
import numpy as np

from tfft.errors import ConfigError
from tfft.peft import virtual_tokens
from tfft.peft.config import parse_peft_config
from tfft.peft.methods import METHODS
from tfft.peft.modules import _names, module_table, select_modules
from tfft.peft.wrapper import AdaptedLayer, BiasDelta, SavedCopy, replace_sublayer

logger = logging.getLogger("tfft")


def _count(variables):
    return int(sum(np.prod(v.shape, dtype=np.int64) for v in variables
                   if keras.backend.is_float_dtype(v.dtype)))


def _parameters(module):
    """A module's float variables that train with its adapter; not the `state_variables` a method
    keeps beside them (AdaLoRA's importance averages and rank masks), which never train."""
    state = {id(v) for v in getattr(module, "state_variables", ())}
    return [v for v in module.weights if keras.backend.is_float_dtype(v.dtype) and id(v) not in state]


class Adapters:
    """The adapters of one model; reached through the model's methods (`add_adapter`, ...)."""

    def __init__(self, model):
        self.model = model
        self.configs = {}
        self.active = None
        self.enabled = True
        self.merged = False
        self.wrappers = {}  # module path -> AdaptedLayer
        self._frozen = []  # (variable, was trainable) of the base model

    # --- adding and removing --------------------------------------------------------------------

    def add(self, name, config, source=None, from_file=False, initialize=True):
        """Adds adapter `name`. `from_file`: modules_to_save names that match nothing are dropped,
        as peft does (its files list `score` for every classifier); the file's tensors are checked.
        `initialize=False`: the weights are assigned next (a `.keras` archive), so an initialization
        from data (prompt tuning's from a text) is skipped."""
        source = source or f"adapter {name!r}"
        if not isinstance(name, str) or not name:
            raise ValueError(f"an adapter name must be a non-empty string, got {name!r}")
        if name in self.configs:
            raise ValueError(f"the model already has an adapter named {name!r}; delete_adapter it or choose another name")
        config = parse_peft_config(config, source)
        method = METHODS[config.method]
        model = self.model
        table = module_table(model)
        model_name = f"{type(model).__name__} on {type(model.encoder).__name__}"
        requested = list(config.modules_to_save or [])
        if from_file:
            requested = [n for n in requested if any(_names(p, n, True) for p in table)]
        heads = [head for head in model.peft_head_modules if head not in requested]
        saved = select_modules(requested, table, "peft.modules_to_save", source, model_name, children=True)
        saved += [m for m in select_modules(heads, table, "peft.modules_to_save", source, model_name, children=True)
                  if m not in saved]
        config = dataclasses.replace(config, modules_to_save=requested + heads)
        saved_paths = {m.path for m in saved}
        # Everything that can fail is checked before the model changes.
        if method.at_encoder:
            config, modules = method.build_modules(config, model, model_name, source, initialize)
        else:
            config, modules = method.build_modules(config, table, model_name, source, saved_paths)
        if not self.configs:
            self._freeze_base()
        modules.update({m.path: SavedCopy(m.layer) for m in saved})
        for path, module in modules.items():
            (self._virtual_tokens() if path == virtual_tokens.SLOT else self._wrapper(table[path])).add(name, module)
        self.configs[name] = config
        if self.active is None:
            self.active = name
        self._refresh()
        return config

    def delete(self, name):
        self._require(name)
        if self.merged and self.active == name:
            self.unmerge()
        for path in list(self.wrappers):
            wrapper = self.wrappers[path]
            if name in wrapper.adapters:
                wrapper.remove(name)
            if not wrapper.adapters:
                self._unwrap(path)
        del self.configs[name]
        if self.active == name:
            self.active = next(iter(self.configs), None)
        if not self.configs:
            self._unfreeze_base()
        self._refresh()

    def set_active(self, name):
        self._require(name)
        if self.merged and self.active != name:
            self.unmerge()
        self.active = name
        self._refresh()

    @contextlib.contextmanager
    def disabled(self):
        was_merged, was_enabled = self.merged, self.enabled
        if was_merged:
            self.unmerge()
        self.enabled = False
        self._refresh()
        try:
            yield
        finally:
            self.enabled = was_enabled
            self._refresh()
            if was_merged:
                self.merge()

    # --- merging ----------------------------------------------------------------------------

    def merge(self):
        """Folds the active adapter into the base weights: inference then costs what the base costs."""
        if self.active is None or self.merged:
            return
        for wrapper in self.wrappers.values():
            if self.active in wrapper.adapters:
                wrapper.merge(self.active)
        self.merged = True
        self._refresh()

    def unmerge(self):
        if not self.merged:
            return
        for wrapper in self.wrappers.values():
            wrapper.unmerge()
        self.merged = False
        self._refresh()

    def mark_merged(self, merged):
        """Records that the base weights already hold the active adapter (a reloaded merged model)."""
        if merged:
            for wrapper in self.wrappers.values():
                if self.active in wrapper.adapters:
                    wrapper.merged = self.active
        self.merged = bool(merged)
        self._refresh()

    def merge_and_unload(self):
        """Merges the active adapter for good and removes every adapter: a plain model again."""
        config = self.configs.get(self.active)
        if config is not None and not config.mergeable:
            raise ConfigError(
                f"adapter {self.active!r} ({config.method}) cannot merge into the base weights: it changes the "
                "attention inputs or adds layers. Keep it in the graph (model.fold_adapters(), as tfft export does)")
        self.merge()
        for path in list(self.wrappers):
            module = self.wrappers[path].adapters.get(self.active)
            if isinstance(module, SavedCopy):
                module.unload(self.wrappers[path].base_layer)
            self._unwrap(path)
        self.configs.clear()
        self.active = None
        self.merged = False
        self._unfreeze_base()
        self._refresh()

    def fold(self):
        """The model for inference and export: the active adapter merged for good where its method
        merges (a plain model again), else kept in the graph as the only adapter, merged parts and all."""
        config = self.configs.get(self.active)
        if config is None or config.mergeable:
            self.merge_and_unload()
            return
        self.enabled = True
        for name in [n for n in self.configs if n != self.active]:
            self.delete(name)
        self.merge()

    # --- parameters -------------------------------------------------------------------------

    def modules_of(self, name):
        """`{path: AdapterModule}` of one adapter."""
        return {path: w.adapters[name] for path, w in self.wrappers.items() if name in w.adapters}

    # --- training -----------------------------------------------------------------------------

    def training_callbacks(self):
        """The Keras callbacks the running adapter's method needs in `fit` (AdaLoRA's rank
        allocation), from its config's `training_callbacks(name)`; `TaskModel.fit` adds them."""
        config = self.configs.get(self.active)
        make = getattr(config, "training_callbacks", None)
        return make(self.active) if make is not None and self.enabled else []

    def gradient_observers(self):
        """The running adapter's modules that watch each training step's gradients
        (`observe_gradients`, called by `TaskModel.train_step`)."""
        if self.active is None or not self.enabled or self.merged:
            return []
        return [m for m in self.modules_of(self.active).values() if hasattr(m, "observe_gradients")]

    def parameter_counts(self, name=None):
        """Parameters of adapter `name` (default the active one): `adapter` (the method's),
        `head` (its `modules_to_save` copies), `trainable` (their sum), `base` and `total`."""
        name = name or self.active
        modules = self.modules_of(name) if name else {}
        head = _count([v for m in modules.values() if isinstance(m, SavedCopy) for v in m.weights])
        adapter = _count([v for m in modules.values() if not isinstance(m, SavedCopy) for v in _parameters(m)])
        # A trained bias counts once, as in peft (which trains the base's bias in place).
        deltas = [layer.delta for w in self.wrappers.values() for m in w.adapters.values()
                  for layer in m._flatten_layers() if isinstance(layer, BiasDelta)]
        state = [v for w in self.wrappers.values() for m in w.adapters.values()
                 for v in getattr(m, "state_variables", ())]
        total = _count(self.model.weights) - _count(deltas) - _count(state)
        base = _count([v for v, _ in self._frozen])
        return {"adapter": adapter, "head": head, "trainable": adapter + head, "base": base, "total": total}

    # --- internals --------------------------------------------------------------------------

    def _require(self, name):
        if name not in self.configs:
            known = ", ".join(self.configs) or "none"
            raise ValueError(f"no adapter named {name!r} (adapters: {known})")

    def _freeze_base(self):
        self._frozen = [(v, v.trainable) for v in self.model.weights]
        for variable, _ in self._frozen:
            variable.trainable = False

    def _unfreeze_base(self):
        for variable, trainable in self._frozen:
            variable.trainable = trainable
        self._frozen = []

    def frozen_variables(self):
        return [v for v, _ in self._frozen]

    def _wrapper(self, module):
        if module.path not in self.wrappers:
            wrapper = module.wrapper or AdaptedLayer(module.layer)
            if module.wrapper is None:
                replace_sublayer(module.parent, module.attr, wrapper)
            self.wrappers[module.path] = wrapper
        return self.wrappers[module.path]

    def _virtual_tokens(self):
        """The encoder's prompt-learning slot, created with the first such adapter."""
        if virtual_tokens.SLOT not in self.wrappers:
            self.wrappers[virtual_tokens.SLOT] = virtual_tokens.attach(self.model.encoder)
        return self.wrappers[virtual_tokens.SLOT]

    def _unwrap(self, path):
        wrapper = self.wrappers.pop(path)
        if path == virtual_tokens.SLOT:
            virtual_tokens.detach(self.model.encoder)
            return
        parent = next(layer for layer in self.model._flatten_layers(include_self=True)
                      if any(value is wrapper for value in vars(layer).values()) and layer is not wrapper)
        attr = next(attr for attr, value in vars(parent).items() if value is wrapper)
        replace_sublayer(parent, attr, wrapper.base_layer)

    def _refresh(self):
        """Points every wrapper at the running adapter, sets which variables train, and drops
        Keras's traced train/test/predict functions, which captured the previous state."""
        running = self.active if self.enabled else None
        for wrapper in self.wrappers.values():
            wrapper.active = running if running in wrapper.adapters else None
            for name, module in wrapper.adapters.items():
                for variable in _parameters(module):
                    variable.trainable = name == self.active
        model = self.model
        model.train_function = model.test_function = model.predict_function = None


def adapters_of(model, required=True):
    adapters = getattr(model, "_adapters", None)
    if adapters is None and required:
        raise ConfigError("this model has no adapters; add one with model.add_adapter(name, config) "
                          "or model.load_adapter(directory)")
    return adapters


__all__ = ["Adapters", "adapters_of"]
