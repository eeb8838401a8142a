"""Tiny classifiers (one on the BERT test fixture, one plain Keras) and toy data for the training tests.

Dropout is off so runs are deterministic: two runs with the same seed give the same weights,
which the resume and multi-device tests compare.
"""

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

BERT_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "encoders" / "bert"
LABELS = ["negative", "neutral", "positive"]


def build_classifier(dtype=None, seed=0):
    """Encoder (dropout 0) + dense head over the pooled output; returns float32 logits [batch, 3]."""
    from tfft.encoders import Encoder

    keras.utils.set_random_seed(seed)
    pretrained = Encoder.from_pretrained(BERT_FIXTURE)
    config = dataclasses.replace(pretrained.config, hidden_dropout=0.0, attention_dropout=0.0)
    encoder = type(pretrained)(config, pooler=pretrained.pooler is not None, dtype=dtype, name="bert_encoder")
    encoder.set_weights(pretrained.get_weights())
    ids = keras.Input((None,), dtype="int32", name="input_ids")
    pooled = encoder({"input_ids": ids})["pooled_output"]
    logits = keras.layers.Dense(len(LABELS), name="classifier", dtype=dtype)(pooled)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(ids, logits)


def build_tiny_classifier(dtype=None, seed=0):
    """A small Keras classifier (embedding, LayerNorm, mean pooling, dense): quick to trace."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input((None,), dtype="int32", name="input_ids")
    x = keras.layers.Embedding(128, 16, name="embeddings", dtype=dtype)(ids)
    x = keras.layers.LayerNormalization(name="norm", dtype=dtype)(x)
    x = keras.layers.GlobalAveragePooling1D(dtype=dtype)(x)
    x = keras.layers.Dense(16, activation="tanh", name="hidden", dtype=dtype)(x)
    logits = keras.layers.Dense(len(LABELS), name="classifier", dtype=dtype)(x)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(ids, logits)


def toy_data(n=48, seq=8, seed=0):
    """Token ids whose label is decided by the first token, so a few steps lower the loss."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 128, (n, seq)).astype("int32")
    labels = (ids[:, 0] % len(LABELS)).astype("int32")
    return ids, labels


def toy_dataset(batch_size, n=48, seed=0):
    ids, labels = toy_data(n, seed=seed)
    return tf.data.Dataset.from_tensor_slices((ids, labels)).batch(batch_size)


def compile_classifier(model, optimizer, jit_compile=False):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model
