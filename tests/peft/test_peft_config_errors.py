"""Bad adapter configs and bad adapter files: one error naming the key or tensor, and the model as it was."""

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from tests.peft.helpers import adapted_layers, assert_plain_model, ids, outputs, perturb, tiny_model
from tfft.errors import CheckpointError, ConfigError
from tfft.peft import IA3Config, LoraConfig

BAD_CONFIGS = [
    pytest.param(LoraConfig(target_modules=["query", "qeury"]),
                 r"'peft\.target_modules': 'qeury' matches no module.*attention\.self\.query", id="unknown-target"),
    pytest.param(LoraConfig(r=0), r"'peft\.r' must be a positive integer", id="r-0"),
    pytest.param({"method": "lora", "r": 0}, r"'peft\.r' must be a positive integer", id="dict-r-0"),
    pytest.param(LoraConfig(target_modules=["LayerNorm"]),
                 r"'peft\.target_modules': LoRA adapts Dense layers.*LayerNorm", id="lora-on-layernorm"),
    pytest.param(LoraConfig(lora_dropout=1.0), r"'peft\.lora_dropout'", id="lora-dropout"),
    pytest.param(LoraConfig(bias="some"), r"'peft\.bias'", id="lora-bias"),
    pytest.param(LoraConfig(target_modules="(unclosed"), r"'peft\.target_modules'.*regular expression", id="bad-regex"),
    pytest.param(LoraConfig(target_modules=r"nothing\..*"), r"'peft\.target_modules'.*matches no module",
                 id="regex-no-match"),
    pytest.param(LoraConfig(modules_to_save=["nowhere"]), r"'peft\.modules_to_save': 'nowhere'", id="modules-to-save"),
    pytest.param(IA3Config(target_modules=["key", "value"], feedforward_modules=["output.dense"]),
                 r"'peft\.feedforward_modules' must be among peft\.target_modules", id="ia3-feedforward"),
    pytest.param(IA3Config(target_modules=["output.LayerNorm"]), r"IA3 adapts Dense layers", id="ia3-on-layernorm"),
    pytest.param({"method": "lorra"}, r"'peft\.method' must be one of \['adalora', 'bitfit', .*'lora'",
                 id="unknown-method"),
    pytest.param({"r": 4}, r"'peft\.method' must be one of", id="no-method"),
    pytest.param({"method": "lora", "rank": 4}, r"unknown key 'peft\.rank'", id="unknown-key"),
    pytest.param({"method": "bitfit", "variant": "some"}, r"'peft\.variant'", id="bitfit-variant"),
]


@pytest.fixture(scope="module")
def plain(tiny_checkpoint, tiny_batch):
    """One model shared by the bad-config tests: each leaves it unchanged, which they check."""
    model = tiny_model(tiny_checkpoint)
    return model, outputs(model, tiny_batch), len(model.weights)


@pytest.mark.parametrize("config, message", BAD_CONFIGS)
def test_bad_config_is_one_config_error_and_changes_nothing(plain, config, message):
    model, _, num_weights = plain
    with pytest.raises(ConfigError, match=message):
        model.add_adapter("x", config)
    assert_plain_model(model, num_weights)


def test_model_works_after_the_failed_adds(plain, tiny_batch):
    model, base, num_weights = plain
    np.testing.assert_array_equal(outputs(model, tiny_batch), base)
    model.add_adapter("ok", LoraConfig(r=2))
    np.testing.assert_array_equal(outputs(model, tiny_batch), base)
    model.delete_adapter("ok")
    assert_plain_model(model, num_weights)


def test_unknown_target_lists_the_modules(plain):
    model = plain[0]
    with pytest.raises(ConfigError) as error:
        model.add_adapter("x", LoraConfig(target_modules=["attention.query"]))
    text = str(error.value)
    for name in ("attention.self.query", "attention.self.value", "intermediate.dense", "output.dense",
                 "bert.pooler.dense", "classifier"):
        assert name in text


def test_bad_name_and_duplicate_name(tiny_checkpoint, tiny_batch):
    model = tiny_model(tiny_checkpoint)
    model.add_adapter("a", LoraConfig(r=2))
    perturb(model.trainable_variables)
    out = outputs(model, tiny_batch)
    trainable = ids(model.trainable_variables)
    with pytest.raises(ValueError, match="already has an adapter named 'a'"):
        model.add_adapter("a", IA3Config())
    with pytest.raises(ValueError, match="non-empty string"):
        model.add_adapter("", IA3Config())
    with pytest.raises(ConfigError, match="peft.r"):  # a bad second adapter leaves the first as it was
        model.add_adapter("b", {"method": "lora", "r": -1})
    assert list(model.peft_config) == ["a"] and model.active_adapter == "a"
    assert ids(model.trainable_variables) == trainable
    np.testing.assert_array_equal(outputs(model, tiny_batch), out)
    assert all(set(w.adapters) == {"a"} for w in adapted_layers(model))


def test_adapter_methods_without_adapter(tiny_checkpoint):
    model = tiny_model(tiny_checkpoint)
    for call in (lambda: model.save_adapter("unused"), model.merge_adapter, model.disable_adapters,
                 lambda: model.set_adapter("a")):
        with pytest.raises(ConfigError, match="no adapters"):
            call()
    assert model.active_adapter is None and model.peft_config == {}


# --- adapter files ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_adapter(tiny_checkpoint, tmp_path_factory):
    model = tiny_model(tiny_checkpoint)
    model.add_adapter("x", LoraConfig(r=4, lora_alpha=8))
    perturb(model.trainable_variables)
    return model.save_adapter(tmp_path_factory.mktemp("adapter"))


def _edited_copy(source, target, edit_tensors=None, edit_config=None):
    shutil.copytree(source, target)
    if edit_tensors:
        path = target / "adapter_model.safetensors"
        save_file(edit_tensors(load_file(path)), path)
    if edit_config:
        path = target / "adapter_config.json"
        path.write_text(json.dumps(edit_config(json.loads(path.read_text()))))
    return target


def _renamed(tensors):
    return {k.replace("base_model.model.", "base_model.model.roberta."): v for k, v in tensors.items()}


def _reshaped(tensors):
    key = "base_model.model.bert.encoder.layer.1.attention.self.value.lora_A.weight"
    return {**tensors, key: np.zeros((4, 16), np.float32)}


def _dropped(tensors):
    return {k: v for k, v in tensors.items() if "layer.1.attention.self.query.lora_B" not in k}


def _extra(tensors):
    key = "base_model.model.bert.encoder.layer.0.attention.self.key.lora_A.weight"  # key has no LoRA here
    return {**tensors, key: np.zeros((4, 32), np.float32)}


BAD_FILES = [
    pytest.param(None, None, "no adapter at .*adapter_config.json not found", id="missing-dir"),
    pytest.param(_renamed, None, r"tensors this model needs are missing.*do not belong to this model.*"
                                 r"base_model\.model\.roberta\.", id="other-prefix"),
    pytest.param(_reshaped, None, r"'base_model\.model\.bert\.encoder\.layer\.1\.attention\.self\.value\.lora_A\."
                                  r"weight' has shape \(4, 16\), this model needs \(4, 32\)", id="shape"),
    pytest.param(None, lambda c: {**c, "r": 8}, r"has shape \(4, 32\), this model needs \(8, 32\)", id="config-r"),
    pytest.param(_dropped, None, r"1 tensors this model needs are missing \(.*layer\.1\.attention\.self\.query\.lora_B",
                 id="missing-tensor"),
    pytest.param(_extra, None, r"1 tensors do not belong to this model \(.*layer\.0\.attention\.self\.key\.lora_A",
                 id="extra-tensor"),
    pytest.param(None, lambda c: {**c, "peft_type": "VERA"}, "peft_type 'VERA' is not supported",
                 id="peft-type"),
]


@pytest.mark.parametrize("edit_tensors, edit_config, message", BAD_FILES)
def test_bad_adapter_file_is_one_checkpoint_error_and_leaves_no_adapter(
        plain, saved_adapter, tmp_path, edit_tensors, edit_config, message):
    model, _, num_weights = plain
    if edit_tensors is None and edit_config is None:
        directory = tmp_path / "absent"
    else:
        directory = _edited_copy(saved_adapter, tmp_path / "edited", edit_tensors, edit_config)
    with pytest.raises(CheckpointError, match=message):
        model.load_adapter(directory)
    assert_plain_model(model, num_weights)


def test_missing_weights_file(plain, saved_adapter, tmp_path):
    model, _, num_weights = plain
    directory = _edited_copy(saved_adapter, tmp_path / "no_weights")
    (directory / "adapter_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="adapter_model.safetensors not found"):
        model.load_adapter(directory)
    assert_plain_model(model, num_weights)


def test_failed_load_keeps_the_other_adapters(tiny_checkpoint, tiny_batch, saved_adapter, tmp_path):
    model = tiny_model(tiny_checkpoint)
    model.add_adapter("a", IA3Config())
    perturb(model.trainable_variables)
    out = outputs(model, tiny_batch)
    trainable = ids(model.trainable_variables)
    directory = _edited_copy(saved_adapter, tmp_path / "edited", _reshaped)
    with pytest.raises(CheckpointError, match="has shape"):
        model.load_adapter(directory, name="b")
    assert list(model.peft_config) == ["a"] and model.active_adapter == "a"
    assert ids(model.trainable_variables) == trainable
    np.testing.assert_array_equal(outputs(model, tiny_batch), out)
    assert all(set(w.adapters) == {"a"} for w in adapted_layers(model))
    with pytest.raises(ValueError, match="already has an adapter named 'a'"):
        model.load_adapter(saved_adapter, name="a")
    model.load_adapter(saved_adapter, name="b")  # the unedited file loads
    assert list(model.peft_config) == ["a", "b"]
