"""Typed run configs: dataclasses with a help string per field, filled from YAML and `--set`.

    config = load_config("configs/sentiment_minilm.yaml", overrides=["training.epochs=1"])

An unknown key, a wrong type or a value outside a field's choices raises one `ConfigError`
naming the file and the dotted key.
"""

import dataclasses
import difflib
import types
import typing
from pathlib import Path

import yaml

from tfft.errors import ConfigError


def field(default=dataclasses.MISSING, *, help, choices=None, default_factory=dataclasses.MISSING):
    metadata = {"help": help, "choices": choices}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class ModelConfig:
    """The `model:` section every task shares; a task's own config class adds its head's fields."""

    checkpoint: str = field(help="Pretrained checkpoint: a directory, a hub id, or 'package:NAME/SUBDIR'.")
    dropout: float | None = field(None, help="Dropout before the head; default the encoder's.")


@dataclasses.dataclass
class DataConfig:
    """The `data:` section every task shares; a task's own config class adds its columns and options."""

    train: str = field(help="Training file.")
    dev: str | None = field(None, help="Dev file for model selection and early stopping.")
    test: str | None = field(None, help="Test file, evaluated once with the best model.")
    max_length: int = field(128, help="Truncate tokenized inputs to this many tokens.")
    on_bad_row: str = field("error", help="Bad rows stop the run or are skipped and counted.", choices=("error", "skip"))
    bucket_by_length: bool = field(True, help="Batch inputs of similar length together (less padding).")


@dataclasses.dataclass
class TrainingConfig:
    epochs: int = field(3, help="Passes over the training data.")
    batch_size: int = field(32, help="Examples per optimizer step (global, across replicas).")
    learning_rate: float = field(5e-5, help="Peak learning rate after warmup.")
    weight_decay: float = field(0.01, help="AdamW decoupled weight decay (not on LayerNorm or biases).")
    warmup_ratio: float = field(0.1, help="Fraction of all steps spent warming up linearly.")
    decay: str = field("linear", help="Learning-rate decay after warmup.", choices=("linear", "cosine"))
    clip_global_norm: float | None = field(1.0, help="Clip gradients to this global norm; null for none.")
    accumulation_steps: int = field(1, help="Micro-batches accumulated per optimizer step.")
    mixed_precision: str | None = field(
        None, help="Keras dtype policy.", choices=(None, "mixed_bfloat16", "mixed_float16")
    )
    jit_compile: bool = field(False, help="Compile train and eval steps with XLA.")
    seed: int = field(42, help="Seed for weights of the head, dropout and shuffling.")
    monitor: str | None = field(None, help="Dev metric that picks the best epoch; default the task's "
                                         "(val_accuracy for classification, val_f1 for NER and QA).")
    early_stopping_patience: int | None = field(None, help="Stop after this many epochs without improvement.")
    log_every_steps: int = field(50, help="TensorBoard scalars every N steps, and a progress line every N steps "
                                          "when stdout is not a terminal.")
    checkpoint_every_steps: int = field(100, help="Save a resumable checkpoint every N steps.")
    distribute: str | None = field(
        None, help="tf.distribute strategy: mirrored (the devices of this machine) or multi_worker_mirrored (the "
                   "workers TF_CONFIG names, e.g. from tfft train --local-workers N).",
        choices=(None, "mirrored", "multi_worker_mirrored")
    )
    cluster_timeout: float = field(300.0, help="Seconds a worker of a multi-worker run waits for every worker to "
                                               "join before it fails naming the addresses that did not answer.")


@dataclasses.dataclass
class ExportConfig:
    enabled: bool = field(True, help="Export a SavedModel after training.")
    version: int | None = field(None, help="TF Serving version directory; default the next free one.")


@dataclasses.dataclass
class RunConfig:
    run_dir: str = field(help="Where the run writes its config, checkpoints, logs, metrics and export.")
    model: ModelConfig = field(help="The pretrained encoder and the task head (fields depend on the task).")
    data: DataConfig = field(help="Data files and how to read them (fields depend on the task).")
    task: str = field("text_classification", help="The task: text_classification, token_classification, ...")
    training: TrainingConfig = field(default_factory=TrainingConfig, help="Optimizer and loop.")
    export: ExportConfig = field(default_factory=ExportConfig, help="SavedModel export.")
    peft: typing.Any = field(None, help="Parameter-efficient fine-tuning: 'method: lora' (or ia3, bitfit) and its "
                                        "fields (tfft.peft); none: full fine-tuning.")

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["peft"] = self.peft.to_dict() if self.peft is not None else None
        if values["peft"] is None:
            del values["peft"]
        return {"task": values.pop("task"), **values}


def _type_name(annotation):
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _check_value(value, annotation, key, source):
    """Returns `value` converted to `annotation`, or raises ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_value(value, option, key, source)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if origin is list:
        (item,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        return [_check_value(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping of {annotation.__name__} fields, got {value!r}")
        return _from_dict(annotation, value, source, prefix=f"{key}.")
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):  # YAML 1.1 reads 5e-5 as a string
        try:
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: '{key}' must be {_type_name(annotation)}, got {value!r}")
    return value


def _from_dict(cls, values, source, prefix="", types_of=None):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = {**typing.get_type_hints(cls), **(types_of or {})}
    for key in values:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f"; known keys: {', '.join(fields)}"
            raise ConfigError(f"{source}: unknown key '{prefix}{key}'{hint}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in values:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key '{key}' ({f.metadata['help']})")
            continue
        value = _check_value(values[name], hints[name], key, source)
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(f"{source}: '{key}' must be one of {list(choices)}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def apply_override(values, assignment, source="--set"):
    """Applies one `dotted.key=value` (value parsed as YAML) to a nested dict, in place."""
    if "=" not in assignment:
        raise ConfigError(f"{source}: '{assignment}' is not of the form key=value")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: cannot parse the value of '{key}': {e}") from None
    node = values
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: '{key}': '{part}' is not a section")
    node[parts[-1]] = value


def load_config(path, overrides=()):
    """Reads a YAML run config, applies `key=value` overrides, and checks every key and type."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    for assignment in overrides:
        apply_override(values, assignment)
    return config_from_dict(values, source=str(path))


def config_from_dict(values, source="config"):
    """A `RunConfig` whose `model` and `data` sections are typed by the task the config names."""
    from tfft.tasks import get_task

    name = values.get("task", RunConfig.task)
    if not isinstance(name, str):
        raise ConfigError(f"{source}: 'task' must be str, got {name!r}")
    task = get_task(name, source)
    values = dict(values)
    peft = values.pop("peft", None)
    config = _from_dict(RunConfig, values, source, types_of={"model": task.model_config, "data": task.data_config})
    if peft is not None:
        from tfft.peft import parse_peft_config

        config.peft = parse_peft_config(peft, source)
    return config
