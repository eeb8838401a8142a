"""Learning-rate schedules: linear warmup, then linear or cosine decay.

The values are those of Hugging Face's `get_linear_schedule_with_warmup` and
`get_cosine_schedule_with_warmup` (one half-cycle), so a recipe tuned with transformers carries
over: `lr(step) = learning_rate * factor(step)` where, with `w = warmup_steps` and
`T = total_steps`,

- warmup: `factor = step / max(1, w)` for `step < w` (the first update uses lr 0, as in
  transformers);
- linear: `factor = max(0, (T - step) / max(1, T - w))`;
- cosine: `factor = max(0, 0.5 * (1 + cos(pi * progress)))`, `progress = (step - w) / max(1, T - w)`,
  clamped to 0 past `T`.

`step` is the optimizer's update count (`optimizer.iterations`), so with gradient accumulation
the schedule counts updates, not micro-batches.
"""

import math

import keras
from keras import ops


class _WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, learning_rate, total_steps, warmup_steps=0, name=None):
        if total_steps is None or int(total_steps) < 1:
            raise ValueError(f"total_steps must be a positive number of optimizer updates, got {total_steps!r}")
        if not 0 <= int(warmup_steps) <= int(total_steps):
            raise ValueError(f"warmup_steps must be between 0 and total_steps={total_steps}, got {warmup_steps!r}")
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.name = name

    def decay_factor(self, progress):
        """Factor after warmup; `progress` runs from 0 (end of warmup) to 1 (`total_steps`)."""
        raise NotImplementedError

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = ops.divide(step, float(max(1, self.warmup_steps)))
        progress = ops.divide(step - self.warmup_steps, float(max(1, self.total_steps - self.warmup_steps)))
        decay = self.decay_factor(ops.clip(progress, 0.0, 1.0))
        factor = ops.where(step < self.warmup_steps, warmup, decay)
        return ops.multiply(self.learning_rate, ops.maximum(factor, 0.0))

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="tfft")
class WarmupLinearDecay(_WarmupSchedule):
    """Linear warmup from 0 to `learning_rate` over `warmup_steps`, then linear decay to 0 at `total_steps`.

    Example:
        >>> schedule = WarmupLinearDecay(2e-5, total_steps=1000, warmup_steps=100)
        >>> float(schedule(50)), float(schedule(100)), float(schedule(550))
        (1e-05, 2e-05, 1e-05)
    """

    def decay_factor(self, progress):
        return 1.0 - progress


@keras.saving.register_keras_serializable(package="tfft")
class WarmupCosineDecay(_WarmupSchedule):
    """Linear warmup to `learning_rate` over `warmup_steps`, then a half cosine down to 0 at `total_steps`."""

    def decay_factor(self, progress):
        return 0.5 * (1.0 + ops.cos(math.pi * progress))


SCHEDULES = {"linear": WarmupLinearDecay, "cosine": WarmupCosineDecay}


def warmup_schedule(learning_rate, total_steps, warmup_steps=None, warmup_ratio=0.0, decay="linear"):
    """Builds a warmup schedule; `warmup_steps` wins over `warmup_ratio` (of `total_steps`, rounded up, as transformers)."""
    if decay not in SCHEDULES:
        raise ValueError(f"decay must be one of {sorted(SCHEDULES)}, got {decay!r}")
    if warmup_steps is None:
        if not 0.0 <= warmup_ratio <= 1.0:
            raise ValueError(f"warmup_ratio must be between 0 and 1, got {warmup_ratio!r}")
        warmup_steps = math.ceil(warmup_ratio * total_steps)
    return SCHEDULES[decay](learning_rate, total_steps=total_steps, warmup_steps=warmup_steps)
