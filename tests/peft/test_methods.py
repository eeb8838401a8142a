"""Every PEFT method on a tiny SequenceClassifier: an untrained adapter changes nothing; trained,
merge / disable / save + load / merge_and_unload keep the outputs they should. (LoRA with
bias="lora_only": tests/peft/test_adapters.py's Keras round trip.)"""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.peft.helpers import adapted_layers, assert_plain_model, outputs, perturb, tiny_model
from tfft.errors import ConfigError
from tfft.peft import BitFitConfig, HoulsbyConfig, IA3Config, LoraConfig, ParallelAdapterConfig, PfeifferConfig

CONFIGS = {
    "lora": LoraConfig(r=4, lora_alpha=8),
    "lora_bias_all": LoraConfig(r=4, lora_alpha=8, bias="all", target_modules=["query", "dense"]),
    "ia3": IA3Config(),
    "bitfit": BitFitConfig(),
    "houlsby": HoulsbyConfig(),
    "pfeiffer": PfeifferConfig(),
    "parallel": ParallelAdapterConfig(),
}
PEFT_TYPES = {"lora": "LORA", "ia3": "IA3", "bitfit": "TFFT_BITFIT", "houlsby": "TFFT_BOTTLENECK",
              "pfeiffer": "TFFT_BOTTLENECK", "parallel": "TFFT_BOTTLENECK"}


@pytest.fixture(params=list(CONFIGS))
def adapted(request, tiny_checkpoint, tiny_batch):
    """(model with a trained adapter "x", base outputs, adapter outputs, config)."""
    config = CONFIGS[request.param]
    model = tiny_model(tiny_checkpoint)
    # A seeded head with logits of order 1, where the method's own change shows.
    model.classifier.kernel.assign(np.random.default_rng(1).standard_normal((32, 3)).astype("float32") * 0.5)
    base = outputs(model, tiny_batch)
    model.add_adapter("x", config)
    np.testing.assert_array_equal(outputs(model, tiny_batch), base)  # untrained: exactly the base
    perturb(model.trainable_variables, scale=0.2)
    out = outputs(model, tiny_batch)
    assert not np.allclose(out, base, atol=1e-4)
    return model, base, out, config


def test_merge_and_disable(adapted, tiny_batch):
    model, base, out, _ = adapted
    with model.disable_adapters():
        np.testing.assert_array_equal(outputs(model, tiny_batch), base)
    np.testing.assert_array_equal(outputs(model, tiny_batch), out)
    model.merge_adapter()
    merged = outputs(model, tiny_batch)
    np.testing.assert_allclose(merged, out, atol=1e-5)
    with model.disable_adapters():  # merged: disabling still gives the base exactly
        np.testing.assert_array_equal(outputs(model, tiny_batch), base)
    assert model._adapters.merged
    np.testing.assert_allclose(outputs(model, tiny_batch), out, atol=1e-5)
    model.unmerge_adapter()  # restores the base weights bit for bit
    np.testing.assert_array_equal(outputs(model, tiny_batch), out)
    with model.disable_adapters():
        np.testing.assert_array_equal(outputs(model, tiny_batch), base)
    # The method itself changes the outputs, not only the head copy: with the copy put back to the
    # base head's weights, they still differ from the base.
    copies = [m for m in model._adapters.modules_of("x").values() if type(m).__name__ == "SavedCopy"]
    assert len(copies) == 1
    for variable, original in zip(copies[0].weights, model.classifier.weights):
        variable.assign(original)
    assert not np.allclose(outputs(model, tiny_batch), base, atol=1e-4)


def test_save_and_load_on_a_fresh_base(adapted, tiny_checkpoint, tiny_batch, tmp_path):
    model, base, out, config = adapted
    model.save_adapter(tmp_path / "unmerged")
    written = json.loads((tmp_path / "unmerged" / "adapter_config.json").read_text())
    assert written["peft_type"] == PEFT_TYPES[config.method] and written["task_type"] == "SEQ_CLS"
    assert "classifier" in written["modules_to_save"]
    assert written["base_model_name_or_path"] == str(tiny_checkpoint)
    tensors = load_file(tmp_path / "unmerged" / "adapter_model.safetensors")
    assert all(k.startswith("base_model.model.") for k in tensors)
    assert tensors["base_model.model.classifier.weight"].shape == (3, 32)
    # Saving a merged adapter writes the same file.
    model.merge_adapter()
    model.save_adapter(tmp_path / "merged")
    assert model._adapters.merged
    merged_tensors = load_file(tmp_path / "merged" / "adapter_model.safetensors")
    assert sorted(merged_tensors) == sorted(tensors)
    for key, value in tensors.items():
        np.testing.assert_allclose(merged_tensors[key], value, atol=1e-6, err_msg=key)

    fresh = tiny_model(tiny_checkpoint)  # its head is another random init: the adapter's copy replaces it
    fresh_base = outputs(fresh, tiny_batch)
    loaded = fresh.load_adapter(tmp_path / "unmerged")
    assert fresh.active_adapter == "default" and loaded.method == config.method
    np.testing.assert_array_equal(outputs(fresh, tiny_batch), out)
    with fresh.disable_adapters():
        np.testing.assert_array_equal(outputs(fresh, tiny_batch), fresh_base)
    # The reloaded adapter trains what the saved one did.
    assert fresh.trainable_parameters()["trainable"] == model.trainable_parameters()["trainable"]


def test_merge_and_unload(adapted, tiny_checkpoint, tiny_batch):
    model, base, out, config = adapted
    if not config.mergeable:  # bottleneck adapters stay in the graph, merged or not
        with pytest.raises(ConfigError, match="cannot merge into the base weights"):
            model.merge_and_unload()
        return
    num_weights = len(tiny_model(tiny_checkpoint).weights)
    assert model.merge_and_unload() is model
    np.testing.assert_allclose(outputs(model, tiny_batch), out, atol=1e-5)
    assert_plain_model(model, num_weights)
    assert type(model.encoder.transformer_layers[0].attention.query).__name__ == "Dense"
    assert type(model.classifier).__name__ == "Dense"
    counts = model.trainable_parameters()
    assert counts["trainable"] == counts["total"]
    # A plain model again: a new adapter can be added to it.
    model.add_adapter("again", LoraConfig(r=2))
    np.testing.assert_allclose(outputs(model, tiny_batch), out, atol=1e-5)
    assert len(adapted_layers(model)) == 5  # 2 layers x (query, value) + the head
