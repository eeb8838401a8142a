"""The modules a method can adapt, named as Hugging Face names them, and peft's target matching.

A module's path is its name in the transformers model class the task model saves as
(`bert.encoder.layer.0.attention.self.query`, `classifier`), so a peft config's
`target_modules` and `modules_to_save` mean the same modules here, and adapter files use
peft's tensor names.
"""

import dataclasses
import re

import keras

from tfft.errors import ConfigError

ADAPTABLE = (keras.layers.Dense, keras.layers.LayerNormalization)

# (parent class name, attribute) -> the block's role, for method defaults that hold for every
# architecture (BitFit's query + intermediate variant) and for messages.
_ROLES = {
    ("SelfAttention", "query"): "query",
    ("SelfAttention", "key"): "key",
    ("SelfAttention", "value"): "value",
    ("SelfAttention", "output_dense"): "attention_output",
    ("FeedForward", "intermediate"): "intermediate",
    ("FeedForward", "output_dense"): "output",
    ("Pooler", "dense"): "pooler",
    ("TransformerLayer", "attention_norm"): "attention_norm",
    ("TransformerLayer", "output_norm"): "output_norm",
    ("Embeddings", "norm"): "norm",
    ("Embeddings", "projection"): "embedding_projection",
}


@dataclasses.dataclass
class Module:
    """One adaptable layer: where it sits (`parent.attr`) and what it is."""

    path: str
    layer: keras.layers.Layer  # the base Dense or LayerNormalization
    parent: keras.layers.Layer
    attr: str
    role: str
    wrapper: keras.layers.Layer | None = None  # its `AdaptedLayer` once a method adapted it

    @property
    def is_dense(self):
        return isinstance(self.layer, keras.layers.Dense)


def short_name(path):
    """`bert.encoder.layer.3.attention.self.query` -> `attention.self.query`: the part peft's
    name matching usually sees."""
    return re.sub(r"^.*\.\d+\.", "", path)


def module_table(model):
    """`{path: Module}` of a task model's Dense and LayerNormalization layers, in weight-table order."""
    from tfft.peft.wrapper import AdaptedLayer

    owners = {}
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, ADAPTABLE):
            for variable in layer._trainable_variables + layer._non_trainable_variables:
                owners[id(variable)] = layer
    places = {}
    for parent in model._flatten_layers(include_self=True):
        if isinstance(parent, AdaptedLayer):
            continue
        for attr, value in vars(parent).items():
            base = value.base_layer if isinstance(value, AdaptedLayer) else value
            if isinstance(base, ADAPTABLE):
                places[id(base)] = (parent, attr, value if value is not base else None)
    table = {}
    for name, (variable, _) in model.hf_weight_table().items():
        layer = owners.get(id(variable))
        if layer is None or not name.endswith(".weight") or id(layer) not in places:
            continue
        path = name.removesuffix(".weight")
        if path in table:
            continue
        parent, attr, wrapper = places[id(layer)]
        role = _ROLES.get((type(parent).__name__, attr), "other")
        if any(path == head or path.startswith(head + ".") for head in model.peft_head_modules):
            role = "head"
        table[path] = Module(path, layer, parent, attr, role, wrapper)
    return table


def by_role(table, roles):
    """The modules whose block role (query, key, value, attention_output, intermediate, output,
    attention_norm and output_norm (a block's two LayerNorms), norm (the embeddings'), pooler, head)
    is one of `roles`: method defaults that hold for every architecture."""
    return [m for m in table.values() if m.role in roles]


def resolve_targets(config, table, default_roles, model_name, source):
    """`(config, modules)` for a method's `target_modules`: the ones it names, or with none the
    modules of `default_roles`, whose names are then written into the config (as peft records them)."""
    if config.target_modules is None:
        targets = by_role(table, default_roles)
        return dataclasses.replace(config, target_modules=short_names(targets)), targets
    return config, select_modules(config.target_modules, table, "peft.target_modules", source, model_name)


def short_names(modules):
    """The distinct `short_name`s of `modules`: a `target_modules` list that peft matches the same way."""
    return list(dict.fromkeys(short_name(m.path) for m in modules))


def _module_list(table):
    names = list(dict.fromkeys(short_name(path) for path in table))
    return ", ".join(names)


def _names(path, name, children):
    if path == name or path.endswith("." + name):
        return True
    # modules_to_save names a module with everything inside it (RoBERTa's `classifier` holds
    # `classifier.dense` and `classifier.out_proj`).
    return children and (path.startswith(name + ".") or f".{name}." in path)


def select_modules(target, table, key, source, model_name, children=False):
    """The modules `target` names, as peft matches them: a list of names each matching a path or
    its last dotted parts (with `children`, also the modules inside it), or one string as a
    regular expression over whole paths. Every listed name must match (peft would skip a
    misspelt one silently)."""
    if isinstance(target, str):
        try:
            pattern = re.compile(target)
        except re.error as e:
            raise ConfigError(f"{source}: '{key}': {target!r} is not a valid regular expression: {e}") from None
        chosen = [m for path, m in table.items() if pattern.fullmatch(path)]
        missing = [] if chosen else [target]
    else:
        chosen, missing = [], []
        for name in target:
            hits = [m for path, m in table.items() if _names(path, name, children)]
            if not hits:
                missing.append(name)
            chosen.extend(m for m in hits if m not in chosen)
    if missing:
        example = next(iter(table))
        raise ConfigError(
            f"{source}: '{key}': {', '.join(map(repr, missing))} matches no module of this {model_name}. "
            f"Its modules: {_module_list(table)}. A name matches a module path or its last dotted parts "
            f"(as in peft); a single string is a regular expression over whole paths such as '{example}'"
        )
    return [m for m in table.values() if m in chosen]


def require_dense(modules, key, source, method, table):
    """Raises ConfigError when a method that adapts Dense layers is pointed at a normalization layer."""
    others = [m.path for m in modules if not m.is_dense]
    if others:
        dense = {path: m for path, m in table.items() if m.is_dense}
        raise ConfigError(
            f"{source}: '{key}': {method} adapts Dense layers; {', '.join(others[:3])} "
            f"{'is a' if len(others) == 1 else 'are'} LayerNormalization. The Dense modules: {_module_list(dense)}"
        )
