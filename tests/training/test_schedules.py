"""Warmup schedules match transformers' formulas and survive Keras serialization."""

import math

import keras
import numpy as np
import pytest

from tfft.training import WarmupCosineDecay, WarmupLinearDecay, warmup_schedule


def hf_linear(step, warmup, total):
    """transformers.get_linear_schedule_with_warmup's lr_lambda."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def hf_cosine(step, warmup, total):
    """transformers.get_cosine_schedule_with_warmup's lr_lambda (num_cycles=0.5)."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))


STEPS = [0, 1, 5, 9, 10, 11, 50, 99, 100]


@pytest.mark.parametrize(
    ("schedule_class", "formula"), [(WarmupLinearDecay, hf_linear), (WarmupCosineDecay, hf_cosine)]
)
def test_values_match_transformers(schedule_class, formula):
    schedule = schedule_class(2e-5, total_steps=100, warmup_steps=10)
    values = [float(schedule(step)) for step in STEPS]
    np.testing.assert_allclose(values, [2e-5 * formula(s, 10, 100) for s in STEPS], rtol=1e-6, atol=1e-12)


def test_hand_computed_values():
    linear = WarmupLinearDecay(1.0, total_steps=10, warmup_steps=4)
    assert [round(float(linear(s)), 6) for s in (0, 2, 4, 7, 10, 12)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    cosine = WarmupCosineDecay(1.0, total_steps=10, warmup_steps=0)
    assert [round(float(cosine(s)), 6) for s in (0, 5, 10, 12)] == [1.0, 0.5, 0.0, 0.0]


def test_warmup_ratio_rounds_up_like_transformers():
    schedule = warmup_schedule(1e-3, total_steps=95, warmup_ratio=0.1, decay="cosine")
    assert isinstance(schedule, WarmupCosineDecay)
    assert schedule.warmup_steps == 10  # ceil(9.5)
    assert warmup_schedule(1e-3, 95, warmup_steps=3, warmup_ratio=0.5).warmup_steps == 3


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="decay must be one of"):
        warmup_schedule(1e-3, 10, decay="step")
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupLinearDecay(1e-3, total_steps=10, warmup_steps=11)
    with pytest.raises(ValueError, match="total_steps"):
        WarmupLinearDecay(1e-3, total_steps=0)


@pytest.mark.parametrize("schedule_class", [WarmupLinearDecay, WarmupCosineDecay])
def test_serialization_round_trip(schedule_class):
    schedule = schedule_class(3e-5, total_steps=50, warmup_steps=5)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(restored) is schedule_class
    assert restored.get_config() == schedule.get_config()
    optimizer = keras.optimizers.AdamW(learning_rate=schedule)
    rebuilt = keras.optimizers.AdamW.from_config(optimizer.get_config())
    assert float(rebuilt.learning_rate) == float(schedule(0))
