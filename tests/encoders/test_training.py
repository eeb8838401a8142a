"""Encoders train like any Keras model: gradients reach every weight, dropout, precision policies."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.encoders.conftest import ENCODER_FIXTURES, reference, reference_inputs
from tfft.encoders import Encoder
from tfft.encoders.layers import Dropout


@pytest.mark.parametrize("name", ["bert_mlm", "albert_mlm", "distilbert", "electra"])
def test_gradients_reach_every_weight(name):
    encoder = Encoder.from_pretrained(ENCODER_FIXTURES / name)
    inputs = reference_inputs(reference(name))
    with tf.GradientTape() as tape:
        out = encoder(inputs, training=True)
        loss = tf.reduce_mean(out["pooled_output"] ** 2)
        if encoder.lm_head is not None:
            loss += tf.reduce_mean(encoder.masked_lm_logits(out["sequence_output"]) ** 2)
    grads = tape.gradient(loss, encoder.trainable_weights)
    missing = [w.path for w, g in zip(encoder.trainable_weights, grads) if g is None]
    assert missing == []


def test_dropout_only_in_training():
    encoder = Encoder.from_pretrained(ENCODER_FIXTURES / "bert")
    inputs = reference_inputs(reference("bert"))
    a, b = (encoder(inputs, training=True)["sequence_output"].numpy() for _ in range(2))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(encoder(inputs)["sequence_output"], encoder(inputs)["sequence_output"])


@pytest.mark.parametrize("jit_compile", [False, True])  # 16-bit Philox draws / ThreeFry under XLA
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dropout_masks(jit_compile, dtype):
    layer = Dropout(0.1, seed=3)
    x = tf.ones((64, 9, 101), dtype)  # an odd element count
    step = tf.function(lambda x: layer(x, training=True), jit_compile=jit_compile)
    first, second = (np.asarray(tf.cast(step(x), "float32")) for _ in range(2))
    dropped = first == 0
    assert abs(dropped.mean() - 0.1) < 0.005  # 58176 draws: 5 standard deviations is 0.0062
    assert (dropped != (second == 0)).any()  # a fresh mask each call
    np.testing.assert_allclose(first[~dropped], 1 / 0.9, rtol=1e-2 if dtype == "bfloat16" else 1e-4)
    with tf.GradientTape() as tape:
        x = tf.Variable(tf.ones((8, 33)))
        y = layer(x, training=True)
    gradient = tape.gradient(y, x).numpy()  # the gradient is the same mask and scale
    np.testing.assert_allclose(gradient, y.numpy(), rtol=1e-6)


def test_fit_reduces_loss():
    keras.utils.set_random_seed(0)
    encoder = Encoder.from_pretrained(ENCODER_FIXTURES / "bert")
    ids = keras.Input((None,), dtype="int32", name="input_ids")
    mask = keras.Input((None,), dtype="int32", name="attention_mask")
    score = keras.layers.Dense(1)(encoder({"input_ids": ids, "attention_mask": mask})["pooled_output"])
    model = keras.Model({"input_ids": ids, "attention_mask": mask}, score)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="mse", jit_compile=True)
    inputs = reference_inputs(reference("bert"))
    inputs.pop("token_type_ids")
    targets = np.array([[1.0], [-1.0], [0.5]], np.float32)
    history = model.fit(inputs, targets, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_mixed_bfloat16_policy():
    ref = reference("roberta")
    encoder = Encoder.from_pretrained(ENCODER_FIXTURES / "roberta", dtype="mixed_bfloat16")
    out = encoder(reference_inputs(ref))["sequence_output"]
    assert out.dtype == tf.bfloat16
    assert encoder.embeddings.word_embeddings.embeddings.dtype == "float32"  # variables stay fp32
    np.testing.assert_allclose(tf.cast(out, tf.float32), ref["sequence_output"], atol=0.1)
