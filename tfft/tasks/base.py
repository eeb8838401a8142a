"""`Task`: what a fine-tuning task owns, so the run, the CLI and export never name one.

A task is one module (or folder) under `tfft/tasks/` with a `Task` subclass:

- its config sections: `model_config` and `data_config`, dataclasses with a help string per
  field, filled from the YAML `model:` and `data:` sections (`task: <name>` picks the task);
- reading and checking its data files (`read`, `fit_labels`), every bad row named by file and line;
- its `tf.data` pipeline (`dataset`), its `keras.Model` (`build_model`), loss and metrics (the
  model's `compile` defaults);
- dev and test metrics (`evaluate`, `format_report`, `scalar_metrics`; `default_monitor` picks
  the best epoch), and what it keeps next to the model (`save_state`, `load_state`);
- prediction on raw inputs (`parse_input`, `predict`); the model's `serving_signatures` give
  the export.

`tfft.run` drives any task through the same steps:

    task = get_task(config.task)(config)
    train = task.read(config.data.train, "train"); task.fit_labels(train)
    model = task.build_model(checkpoint)
    model.fit(task.dataset(model, train, training=True), ...)
    task.evaluate(model, dev)

Adding a task is one module with a `Task` subclass, listed in `tfft/tasks/__init__.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from tfft.config import DataConfig, ModelConfig
from tfft.errors import ConfigError, DataError


class Task:
    """Base class of the tasks; see the module docstring for the protocol."""

    name: ClassVar[str]
    model_config: ClassVar[type] = ModelConfig
    data_config: ClassVar[type] = DataConfig
    default_monitor: ClassVar[str] = "val_loss"
    # The fields of one prediction input, for `tfft predict` (a JSON object line with these keys,
    # or plain text for the first of them).
    input_fields: ClassVar[tuple[str, ...]] = ("text",)

    def __init__(self, config):
        self.config = config

    # -- data ------------------------------------------------------------------------------------
    def read(self, path, split: str):
        """Reads one data file (`split` names it in messages: train, dev, test, evaluate)."""
        raise NotImplementedError

    def read_split(self, path, split: str):
        if not Path(path).is_file():
            raise ConfigError(f"data.{split}: file not found: {path}")
        return self.read(path, split)

    def fit_labels(self, train) -> None:
        """Sets the label vocabulary from the config or the training data."""

    def check(self, examples) -> None:
        """Raises DataError (file, line, label) where `examples` do not fit the label vocabulary."""

    def save_state(self, run_dir: Path) -> None:
        """Writes what the task keeps beside the model in the run directory (its label vocabulary)."""

    def load_state(self, run_dir: Path) -> None:
        """Reads what `save_state` wrote."""

    # -- model and pipeline ----------------------------------------------------------------------
    def build_model(self, checkpoint):
        """The task's keras.Model on the pretrained checkpoint directory, tokenizer attached."""
        raise NotImplementedError

    def dataset(self, model, examples, training: bool = False):
        """Batched `(features, targets)`; `training=True` shuffles and buckets as the config says."""
        raise NotImplementedError

    def after_fit(self, model, splits: dict) -> None:
        """After training, before the final dev/test evaluation and saving (e.g. tune a threshold on dev)."""

    # -- metrics ---------------------------------------------------------------------------------
    def evaluate(self, model, examples, verbose: int = 0) -> dict:
        """The task's metrics dict of `model` on labelled `examples`."""
        raise NotImplementedError

    def format_report(self, metrics: dict) -> str:
        raise NotImplementedError

    def scalar_metrics(self, metrics: dict) -> dict[str, float]:
        """The headline numbers, logged as `val_<name>` and monitored for the best epoch."""
        raise NotImplementedError

    def monitor(self) -> str:
        return self.config.training.monitor or self.default_monitor

    # -- prediction ------------------------------------------------------------------------------
    def parse_input(self, line: str, where: str) -> dict[str, Any]:
        """One prediction input from a CLI argument or line: a JSON object with the `input_fields`
        keys, or plain text for the first field."""
        record = {self.input_fields[0]: line}
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON: {e.msg}") from None
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object with {', '.join(self.input_fields)}")
        unknown = sorted(set(record) - set(self.input_fields))
        if unknown:
            raise DataError(f"{where}: unknown field {unknown[0]!r}; expected {', '.join(self.input_fields)}")
        for name in self.input_fields:
            value = record.get(name)
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where}: '{name}' must be a non-empty string "
                                f"(inputs are JSON objects with {', '.join(self.input_fields)})")
        return record

    def predict(self, model, records: list[dict], batch_size: int = 32) -> list[dict]:
        """One JSON-ready result per parsed input record."""
        raise NotImplementedError

    # -- export ----------------------------------------------------------------------------------
    def export_max_length(self) -> int | None:
        return self.config.data.max_length

    def hparams(self) -> dict:
        import dataclasses

        values = {**dataclasses.asdict(self.config.training), **dataclasses.asdict(self.config.model)}
        values["task"] = self.name
        peft = getattr(self.config, "peft", None)
        values["peft"] = peft.method if peft is not None else "none"
        if peft is not None:
            values.update({f"peft_{k}": v for k, v in dataclasses.asdict(peft).items()})
        return {k: v for k, v in values.items() if isinstance(v, (int, float, str, bool))}
