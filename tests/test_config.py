"""Typed YAML run configs: every key and type checked, errors name the file and key."""

import pytest

from tfft.config import load_config
from tfft.errors import ConfigError

BASE = """
run_dir: runs/x
model:
  checkpoint: some/dir
data:
  train: train.jsonl
training:
  learning_rate: 5e-5
  epochs: 2
"""


@pytest.fixture
def config_file(tmp_path):
    def write(text=BASE):
        path = tmp_path / "run.yaml"
        path.write_text(text)
        return path

    return write


def test_defaults_and_yaml_floats(config_file):
    config = load_config(config_file())
    assert config.training.learning_rate == 5e-5 and config.training.epochs == 2
    assert config.training.batch_size == 32 and config.model.pooling == "pooler" and config.export.enabled


def test_overrides_parse_values(config_file):
    config = load_config(config_file(), ["training.epochs=1", "model.labels=[neg, pos]", "data.dev=dev.jsonl",
                                         "training.mixed_precision=mixed_bfloat16"])
    assert config.training.epochs == 1 and config.model.labels == ["neg", "pos"]
    assert config.data.dev == "dev.jsonl" and config.training.mixed_precision == "mixed_bfloat16"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["training.learning_rat=1e-4"], r"run\.yaml: unknown key 'training\.learning_rat' \(did you mean 'training\.learning_rate'\?\)"),
        (["training.epochs=three"], r"run\.yaml: 'training\.epochs' must be int, got 'three'"),
        (["training.epochs=true"], r"'training\.epochs' must be int, got True"),
        (["model.pooling=max"], r"'model\.pooling' must be one of \['pooler', 'cls', 'mean'\], got 'max'"),
        (["model.labels=neg"], r"'model\.labels' must be a list"),
        (["training=5"], r"'training' must be a mapping"),
        (["epochs"], r"'epochs' is not of the form key=value"),
    ],
)
def test_bad_values_name_the_key(config_file, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(config_file(), overrides)


def test_missing_required_key(config_file):
    with pytest.raises(ConfigError, match=r"missing required key 'model\.checkpoint'"):
        load_config(config_file(BASE.replace("  checkpoint: some/dir\n", "  pooling: cls\n")))


def test_missing_file_and_bad_yaml(tmp_path, config_file):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(config_file("run_dir: [unclosed"))


def test_shipped_configs_load():
    from pathlib import Path

    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)
