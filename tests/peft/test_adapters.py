"""Several adapters on one model, deleting them, training with fit, Keras `.keras` saving."""

import keras
import numpy as np
import pytest

from tests.peft.helpers import adapted_layers, assert_plain_model, ids, outputs, perturb, snapshot, tiny_model
from tfft.peft import IA3Config, LoraConfig


def _adapter_variables(model, name):
    return [v for m in model._adapters.modules_of(name).values() for v in m.weights]


def test_switch_and_delete_adapters(tiny_checkpoint, tiny_batch):
    model = tiny_model(tiny_checkpoint)
    num_weights = len(model.weights)
    base = outputs(model, tiny_batch)
    model.add_adapter("a", LoraConfig(r=4))
    model.add_adapter("b", IA3Config())
    assert model.active_adapter == "a" and list(model.peft_config) == ["a", "b"]
    a_vars, b_vars = _adapter_variables(model, "a"), _adapter_variables(model, "b")
    assert ids(model.trainable_variables) == ids(a_vars)
    assert not any(v.trainable for v in b_vars)
    perturb(a_vars, seed=0)
    out_a = outputs(model, tiny_batch)

    model.set_adapter("b")
    assert model.active_adapter == "b"
    assert ids(model.trainable_variables) == ids(b_vars)
    assert not any(v.trainable for v in a_vars)
    np.testing.assert_array_equal(outputs(model, tiny_batch), base)  # b is untrained
    perturb(b_vars, seed=1)
    out_b = outputs(model, tiny_batch)
    assert not np.allclose(out_b, out_a, atol=1e-4) and not np.allclose(out_b, base, atol=1e-4)
    model.set_adapter("a")
    np.testing.assert_array_equal(outputs(model, tiny_batch), out_a)
    with pytest.raises(ValueError, match="no adapter named 'c'"):
        model.set_adapter("c")

    # Merged "a", switching to "b" unmerges it first.
    model.merge_adapter()
    model.set_adapter("b")
    np.testing.assert_array_equal(outputs(model, tiny_batch), out_b)

    model.delete_adapter("a")  # the inactive one
    assert model.active_adapter == "b" and list(model.peft_config) == ["b"]
    np.testing.assert_array_equal(outputs(model, tiny_batch), out_b)
    assert ids(model.trainable_variables) == ids(b_vars)
    assert not any(type(m).__name__ == "LoraModule" for w in adapted_layers(model) for m in w.adapters.values())
    model.delete_adapter("b")
    np.testing.assert_array_equal(outputs(model, tiny_batch), base)
    assert_plain_model(model, num_weights)


def test_deleting_the_active_adapter_activates_another(tiny_checkpoint, tiny_batch):
    model = tiny_model(tiny_checkpoint)
    base = outputs(model, tiny_batch)
    model.add_adapter("a", LoraConfig(r=2))
    model.add_adapter("b", {"method": "bitfit"})
    model.merge_adapter()
    model.delete_adapter("a")
    assert model.active_adapter == "b" and not model._adapters.merged
    assert ids(model.trainable_variables) == ids(_adapter_variables(model, "b"))
    np.testing.assert_array_equal(outputs(model, tiny_batch), base)


def _cross_entropy(logits, labels):
    logits = logits - logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def test_fit_trains_only_the_adapter(tiny_checkpoint, tiny_batch):
    model = tiny_model(tiny_checkpoint, dropout=0.0)
    model.add_adapter("x", LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1))
    logits = outputs(model, tiny_batch)
    np.testing.assert_array_equal(outputs(model, tiny_batch), logits)  # no LoRA dropout at inference
    frozen = model._adapters.frozen_variables()
    before_frozen = snapshot(frozen)
    trainable = list(model.trainable_variables)
    before_trainable = snapshot(trainable)
    labels = np.array([0, 1, 2])
    loss_before = _cross_entropy(logits, labels)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(tiny_batch, labels, batch_size=3, epochs=4, verbose=0, shuffle=False)
    # (the encoder's dropout makes fit's own losses noisy: compare inference losses)
    assert _cross_entropy(outputs(model, tiny_batch), labels) < loss_before
    assert len(model.optimizer._trainable_variables) == len(model.trainable_variables) == len(trainable)
    assert ids(model.optimizer._trainable_variables) == ids(trainable)
    for variable, value in zip(frozen, before_frozen):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    for variable, value in zip(trainable, before_trainable):  # lora_A, lora_B and the head copy all move
        assert not np.array_equal(variable.numpy(), value), variable.path


def _keras_round_trip(model, path):
    model.save(path)
    return keras.saving.load_model(path)


def test_keras_save_and_load_with_lora(tiny_checkpoint, tiny_batch, tmp_path):
    model = tiny_model(tiny_checkpoint)
    base = outputs(model, tiny_batch)
    model.add_adapter("x", LoraConfig(r=4, lora_alpha=8, bias="lora_only"))
    perturb(model.trainable_variables)
    out = outputs(model, tiny_batch)

    loaded = _keras_round_trip(model, tmp_path / "unmerged.keras")
    assert loaded.active_adapter == "x" and loaded.peft_config == model.peft_config
    np.testing.assert_array_equal(outputs(loaded, tiny_batch), out)
    with loaded.disable_adapters():
        np.testing.assert_array_equal(outputs(loaded, tiny_batch), base)
    assert len(loaded.trainable_variables) == len(model.trainable_variables)
    assert loaded.trainable_parameters() == model.trainable_parameters()

    model.merge_adapter()
    merged = outputs(model, tiny_batch)
    loaded = _keras_round_trip(model, tmp_path / "merged.keras")
    assert loaded._adapters.merged
    np.testing.assert_allclose(outputs(loaded, tiny_batch), merged, atol=1e-6)
    with loaded.disable_adapters():
        np.testing.assert_allclose(outputs(loaded, tiny_batch), base, atol=1e-5)
    loaded.unmerge_adapter()
    np.testing.assert_allclose(outputs(loaded, tiny_batch), out, atol=1e-5)
    # A reloaded merged model still saves the adapter itself, not the merged weights.
    loaded.save_adapter(tmp_path / "from_reloaded")
    fresh = tiny_model(tiny_checkpoint)
    fresh.load_adapter(tmp_path / "from_reloaded")
    np.testing.assert_allclose(outputs(fresh, tiny_batch), out, atol=1e-5)


def test_keras_save_and_load_with_two_adapters(tiny_checkpoint, tiny_batch, tmp_path):
    model = tiny_model(tiny_checkpoint)
    model.add_adapter("a", LoraConfig(r=2))
    perturb(model.trainable_variables, seed=0)
    out_a = outputs(model, tiny_batch)
    model.add_adapter("b", IA3Config())
    model.set_adapter("b")
    perturb(model.trainable_variables, seed=1)
    out_b = outputs(model, tiny_batch)
    loaded = _keras_round_trip(model, tmp_path / "two.keras")
    assert loaded.active_adapter == "b" and list(loaded.peft_config) == ["a", "b"]
    np.testing.assert_array_equal(outputs(loaded, tiny_batch), out_b)
    loaded.set_adapter("a")
    np.testing.assert_array_equal(outputs(loaded, tiny_batch), out_a)
    assert ids(loaded.trainable_variables) == ids(_adapter_variables(loaded, "a"))


def test_merge_and_unload_then_keras_save(tiny_checkpoint, tiny_batch, tmp_path):
    model = tiny_model(tiny_checkpoint)
    num_weights = len(model.weights)
    model.add_adapter("x", LoraConfig(r=4))
    perturb(model.trainable_variables)
    out = outputs(model, tiny_batch)
    model.merge_and_unload()
    loaded = _keras_round_trip(model, tmp_path / "plain.keras")
    assert "adapters" not in loaded.get_config()
    np.testing.assert_allclose(outputs(loaded, tiny_batch), out, atol=1e-5)
    assert_plain_model(loaded, num_weights)
