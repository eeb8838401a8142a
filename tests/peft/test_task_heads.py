"""PEFT on TokenClassifier and QuestionAnswerer: their heads are `classifier` and `qa_outputs`."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

import tfft
from tests.peft.helpers import outputs, perturb, tiny_model
from tfft.peft import LoraConfig, ParallelAdapterConfig, PrefixTuningConfig

R, HIDDEN = 4, 32
LAYER0 = "base_model.model.bert.encoder.layer.0.attention.self."


@pytest.mark.parametrize("cls, head, width, task_type", [
    (tfft.TokenClassifier, "classifier", 3, "TOKEN_CLS"),
    (tfft.QuestionAnswerer, "qa_outputs", 2, "QUESTION_ANS"),
])
def test_lora_round_trip(tiny_checkpoint, tiny_batch, tmp_path, cls, head, width, task_type):
    model = tiny_model(tiny_checkpoint, cls)
    base = outputs(model, tiny_batch)
    config = model.add_adapter("x", LoraConfig(r=R, lora_alpha=8))
    assert config.modules_to_save == [head]
    np.testing.assert_array_equal(outputs(model, tiny_batch), base)
    perturb(model.trainable_variables)
    out = outputs(model, tiny_batch)
    assert not np.allclose(out, base, atol=1e-4)
    model.save_adapter(tmp_path)

    tensors = load_file(tmp_path / "adapter_model.safetensors")
    assert tensors[f"base_model.model.{head}.weight"].shape == (width, HIDDEN)
    assert tensors[f"base_model.model.{head}.bias"].shape == (width,)
    assert tensors[LAYER0 + "query.lora_A.weight"].shape == (R, HIDDEN)
    assert tensors[LAYER0 + "query.lora_B.weight"].shape == (HIDDEN, R)
    assert tensors[LAYER0 + "value.lora_A.weight"].shape == (R, HIDDEN)
    assert not any("pooler" in k for k in tensors)  # per-token heads have no pooler
    assert len(tensors) == 2 * 2 * 2 + 2  # 2 layers x (query, value) x (A, B) + the head
    written = json.loads((tmp_path / "adapter_config.json").read_text())
    assert written["task_type"] == task_type and written["modules_to_save"] == [head]

    fresh = tiny_model(tiny_checkpoint, cls)
    fresh.load_adapter(tmp_path)
    np.testing.assert_array_equal(outputs(fresh, tiny_batch), out)
    fresh.merge_adapter()
    np.testing.assert_allclose(outputs(fresh, tiny_batch), out, atol=1e-5)
    fresh.merge_and_unload()
    np.testing.assert_allclose(outputs(fresh, tiny_batch), out, atol=1e-5)
    assert type(getattr(fresh, head)).__name__ == "Dense"


@pytest.mark.parametrize("config", [ParallelAdapterConfig(), PrefixTuningConfig(num_virtual_tokens=3)],
                         ids=["parallel", "prefix"])
@pytest.mark.parametrize("cls, head", [(tfft.TokenClassifier, "classifier"), (tfft.QuestionAnswerer, "qa_outputs")])
def test_in_graph_methods_round_trip(tiny_checkpoint, tiny_batch, tmp_path, cls, head, config):
    model = tiny_model(tiny_checkpoint, cls)
    base = outputs(model, tiny_batch)
    assert model.add_adapter("x", config).modules_to_save == [head]
    perturb(model.trainable_variables)
    out = outputs(model, tiny_batch)
    assert out.shape == base.shape and not np.allclose(out, base, atol=1e-4)
    model.save_adapter(tmp_path)
    assert any(k.endswith(f".{head}.weight") for k in load_file(tmp_path / "adapter_model.safetensors"))
    fresh = tiny_model(tiny_checkpoint, cls)
    fresh.load_adapter(tmp_path)
    np.testing.assert_array_equal(outputs(fresh, tiny_batch), out)
