"""IA3 and BitFit: default modules, which variables train, file layout."""

import json

import numpy as np
from safetensors.numpy import load_file

from tests.peft.helpers import ids, outputs, perturb, tiny_model
from tfft.peft import BitFitConfig, IA3Config
from tfft.peft.ia3 import IA3Module
from tfft.peft.wrapper import BiasDelta, SavedCopy

HIDDEN, INTERMEDIATE, LAYERS, NUM_LABELS = 32, 64, 2, 3
HEAD = HIDDEN * NUM_LABELS + NUM_LABELS
PREFIX = "base_model.model.bert.encoder.layer.0."


def test_ia3_defaults_to_peft_bert_modules(tiny_checkpoint, tmp_path):
    model = tiny_model(tiny_checkpoint)
    base_variables = list(model.weights)
    config = model.add_adapter("x", IA3Config())
    assert config.target_modules == ["attention.self.key", "attention.self.value", "attention.output.dense",
                                     "output.dense"]
    assert config.feedforward_modules == ["attention.output.dense", "output.dense"]
    modules = model._adapters.modules_of("x")
    ia3 = {path: m for path, m in modules.items() if isinstance(m, IA3Module)}
    assert len(ia3) == 4 * LAYERS
    assert ia3[PREFIX.removeprefix("base_model.model.") + "output.dense"].feedforward
    assert not ia3[PREFIX.removeprefix("base_model.model.") + "attention.self.key"].feedforward
    assert ids(model.trainable_variables) == ids([m.scale for m in ia3.values()] + modules["classifier"].weights)
    assert not any(v.trainable for v in base_variables)
    # key, value: their output (32 each); attention.output.dense, output.dense: their input (32, 64).
    counts = model.trainable_parameters()
    assert counts["adapter"] == (HIDDEN + HIDDEN + HIDDEN + INTERMEDIATE) * LAYERS
    assert counts["head"] == HEAD and counts["trainable"] == counts["adapter"] + HEAD

    perturb(model.trainable_variables)
    model.save_adapter(tmp_path)
    tensors = load_file(tmp_path / "adapter_model.safetensors")
    assert tensors[PREFIX + "attention.self.key.ia3_l"].shape == (HIDDEN, 1)
    assert tensors[PREFIX + "output.dense.ia3_l"].shape == (1, INTERMEDIATE)
    assert tensors[PREFIX + "attention.output.dense.ia3_l"].shape == (1, HIDDEN)
    written = json.loads((tmp_path / "adapter_config.json").read_text())
    assert written["peft_type"] == "IA3" and written["feedforward_modules"] == config.feedforward_modules


def test_ia3_feedforward_scales_the_input(tiny_checkpoint):
    model = tiny_model(tiny_checkpoint)
    model.add_adapter("x", IA3Config(target_modules=["intermediate.dense", "key"],
                                     feedforward_modules=["intermediate.dense"]))
    perturb(model.trainable_variables)
    wrapper = model.encoder.transformer_layers[0].ffn.intermediate
    module = wrapper.adapters["x"]
    base = wrapper.base_layer
    x = np.random.default_rng(0).standard_normal((2, HIDDEN)).astype("float32")
    np.testing.assert_allclose(wrapper(x).numpy(), base(x * module.scale.numpy()).numpy(), atol=1e-5)
    key = model.encoder.transformer_layers[0].attention.key
    np.testing.assert_allclose(key(x).numpy(), key.base_layer(x).numpy() * key.adapters["x"].scale.numpy(), atol=1e-5)


def test_bitfit_trains_every_bias(tiny_checkpoint, tmp_path):
    model = tiny_model(tiny_checkpoint)
    model.add_adapter("x", BitFitConfig())
    modules = model._adapters.modules_of("x")
    deltas = [m for m in modules.values() if isinstance(m, BiasDelta)]
    # embeddings LayerNorm; per layer q, k, v, attention output, its LayerNorm, intermediate, output,
    # its LayerNorm; the pooler. The head trains in full (its copy).
    assert len(deltas) == 1 + 8 * LAYERS + 1
    per_layer = 4 * HIDDEN + HIDDEN + INTERMEDIATE + HIDDEN + HIDDEN
    counts = model.trainable_parameters()
    assert counts["adapter"] == HIDDEN + per_layer * LAYERS + HIDDEN
    assert counts["head"] == HEAD
    assert ids(model.trainable_variables) == ids([m.delta for m in deltas] + modules["classifier"].weights)
    assert isinstance(modules["classifier"], SavedCopy)

    perturb(model.trainable_variables)
    model.save_adapter(tmp_path)
    tensors = load_file(tmp_path / "adapter_model.safetensors")
    query = model.encoder.transformer_layers[0].attention.query
    # The file holds the bias the model uses (base + trained change) under the base tensor's name.
    np.testing.assert_allclose(tensors[PREFIX + "attention.self.query.bias"],
                               query.base_layer.bias.numpy() + query.adapters["x"].delta.numpy(), atol=1e-6)
    assert PREFIX + "output.LayerNorm.bias" in tensors
    assert not any(k.endswith("weight") for k in tensors if not k.startswith("base_model.model.classifier"))
    assert json.loads((tmp_path / "adapter_config.json").read_text())["peft_type"] == "TFFT_BITFIT"


def test_bitfit_query_intermediate_variant(tiny_checkpoint, tiny_batch):
    model = tiny_model(tiny_checkpoint)
    base = outputs(model, tiny_batch)
    model.add_adapter("x", {"method": "bitfit", "variant": "query_intermediate"})
    paths = [p for p, m in model._adapters.modules_of("x").items() if isinstance(m, BiasDelta)]
    assert paths == [f"bert.encoder.layer.{i}.{name}" for i in range(LAYERS)
                     for name in ("attention.self.query", "intermediate.dense")]
    assert model.trainable_parameters()["adapter"] == (HIDDEN + INTERMEDIATE) * LAYERS
    np.testing.assert_array_equal(outputs(model, tiny_batch), base)
