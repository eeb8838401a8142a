"""create_optimizer: weight-decay exclusions, clipping, accumulation, mixed precision, XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training.tiny import build_classifier, build_tiny_classifier, compile_classifier, toy_dataset
from tfft.training import AdamW, LossScaleOptimizer, WarmupLinearDecay, create_optimizer, no_decay_variables


def test_weight_decay_skips_layer_norm_and_bias_of_a_tfft_encoder():
    model = build_classifier()
    excluded = {w.path for w in no_decay_variables(model)}
    assert excluded == {w.path for w in model.trainable_weights if w.name in ("gamma", "beta", "bias")}
    # Paths end the same way whether or not Keras prefixes them with the encoder's name.
    for suffix in (
        "layer_0/attention_norm/gamma",
        "embeddings/norm/beta",
        "layer_1/ffn/output/bias",
        "classifier/bias",
    ):
        assert any(path.endswith(suffix) for path in excluded), suffix
    assert not any(path.endswith("attention/query/kernel") for path in excluded)

    # A step with zero gradients: Adam moves nothing, so only weight decay changes weights.
    optimizer = create_optimizer(model, 0.1, total_steps=10, weight_decay=0.5, clip_global_norm=None)
    skipped = {id(w) for w in no_decay_variables(model)}
    before = [w.numpy() for w in model.trainable_weights]
    optimizer.apply([tf.zeros_like(w) for w in model.trainable_weights], model.trainable_weights)
    for w, value in zip(model.trainable_weights, before):
        expected = value if id(w) in skipped else value * (1 - 0.1 * 0.5)
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6, err_msg=w.path)


def test_the_model_may_be_built_after_create_optimizer():
    model = keras.Sequential([keras.layers.Dense(2), keras.layers.LayerNormalization(), keras.layers.Dense(1)])
    optimizer = create_optimizer(model, 1e-3, total_steps=10)
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0)
    first, norm, last = model.layers
    skipped = {id(w) for w in model.trainable_weights if not optimizer._use_weight_decay(w)}
    assert skipped == {id(first.bias), id(norm.gamma), id(norm.beta), id(last.bias)}
    with pytest.raises(ValueError, match="build the model before the optimizer"):
        no_decay_variables(keras.Sequential([keras.layers.Dense(2)]))


def _momentum(optimizer, variable):
    name = f"{variable.path.replace('/', '_')}_momentum"
    return next(v for v in optimizer.variables if v.name == name).numpy()


@pytest.mark.parametrize("clip", [1.0, 10.0, None])
def test_clipping_by_global_norm_and_the_recorded_norm(clip):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    optimizer = create_optimizer(model, 0.1, total_steps=10, weight_decay=0.0, clip_global_norm=clip)
    kernel, bias = model.trainable_weights
    optimizer.apply([tf.constant([[3.0, 0.0], [0.0, 0.0]]), tf.constant([0.0, 4.0])], [kernel, bias])  # Norm 5.
    assert float(optimizer.gradient_norm.numpy()) == pytest.approx(5.0)
    scale = min(1.0, clip / 5.0) if clip else 1.0
    np.testing.assert_allclose(_momentum(optimizer, kernel), 0.1 * scale * np.array([[3.0, 0.0], [0.0, 0.0]]), rtol=1e-6)
    np.testing.assert_allclose(_momentum(optimizer, bias), 0.1 * scale * np.array([0.0, 4.0]), rtol=1e-6)


def test_a_non_finite_gradient_norm_poisons_the_clipped_update():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    optimizer = create_optimizer(model, 0.1, total_steps=10, weight_decay=0.0, clip_global_norm=1.0)
    kernel = model.trainable_weights[0]
    optimizer.apply([tf.constant([[np.inf], [1.0]])], [kernel])
    assert not np.isfinite(optimizer.gradient_norm.numpy())
    assert np.isnan(_momentum(optimizer, kernel)).all()  # as clip_by_global_norm: nothing half-clipped


def _fit(accumulation_steps, jit_compile=False, dtype=None, epochs=2):
    model = build_tiny_classifier(dtype=dtype)
    optimizer = create_optimizer(model, 1e-2, total_steps=12, warmup_steps=2, accumulation_steps=accumulation_steps)
    compile_classifier(model, optimizer, jit_compile=jit_compile)
    history = model.fit(toy_dataset(8 // accumulation_steps), epochs=epochs, verbose=0, shuffle=False)
    return model, history


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_accumulated_micro_batches_match_one_big_batch(jit_compile):
    big, big_history = _fit(accumulation_steps=1)
    small, small_history = _fit(accumulation_steps=2, jit_compile=jit_compile)
    assert int(small.optimizer.iterations.numpy()) == int(big.optimizer.iterations.numpy()) == 12
    # The schedule counts updates, not micro-batches.
    assert float(small.optimizer.learning_rate) == pytest.approx(float(WarmupLinearDecay(1e-2, 12, 2)(12)))
    np.testing.assert_allclose(small_history.history["loss"], big_history.history["loss"], rtol=1e-4)
    for a, b in zip(small.get_weights(), big.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_keras_accumulation_argument_is_refused():
    with pytest.raises(ValueError, match="accumulation_steps"):
        AdamW(gradient_accumulation_steps=2)


def test_mixed_bfloat16_trains_a_tfft_encoder_on_cpu():
    model = build_classifier(dtype="mixed_bfloat16")
    optimizer = create_optimizer(model, 1e-3, total_steps=4)
    assert isinstance(optimizer, AdamW)  # bfloat16 needs no loss scaling.
    compile_classifier(model, optimizer)
    history = model.fit(toy_dataset(16, n=32), epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()
    assert all(w.dtype == "float32" for w in model.trainable_weights)
    assert int(optimizer.iterations.numpy()) == 2


def test_mixed_float16_gets_loss_scaling_and_reports_the_unscaled_norm():
    reference, _ = _fit(accumulation_steps=1, epochs=1)
    model, history = _fit(accumulation_steps=1, dtype="mixed_float16", epochs=1)
    assert isinstance(model.optimizer, LossScaleOptimizer)
    assert np.isfinite(history.history["loss"]).all()
    assert int(model.optimizer.iterations.numpy()) == 6
    # Same gradient norm as float32 (to float16 precision), not 2**15 times it.
    reference_norm = float(reference.optimizer.gradient_norm.numpy())
    assert float(model.optimizer.gradient_norm.numpy()) == pytest.approx(reference_norm, rel=0.05)


def test_optimizer_serializes():
    model = build_tiny_classifier()
    optimizer = create_optimizer(model, 1e-3, total_steps=10, decay="cosine", accumulation_steps=4)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, AdamW)
    assert restored.accumulation_steps == 4
    assert restored.global_clipnorm == 1.0
