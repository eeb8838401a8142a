"""Trains the tiny classifier on one and on two logical CPU devices with the same global batch.

Run by test_distributed.py in its own process: logical devices must be set before TensorFlow
initializes its devices. Prints one JSON line: per-run batch losses, gradient norms, and the
largest weight difference from the one-device run; and the factor weight decay applied to each
variable under the strategy.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import keras  # noqa: E402
import numpy as np  # noqa: E402

from tests.training.tiny import build_classifier, compile_classifier, toy_dataset  # noqa: E402
from tfft.training import create_optimizer  # noqa: E402

GLOBAL_BATCH = 8


class Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses, self.norms, self.step = [], [], 0

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step == self.step:
            return  # A micro-batch without an update.
        self.step = step
        self.losses.append(float(logs["loss"]))
        self.norms.append(float(self.model.optimizer.gradient_norm.numpy()))


def train(devices, accumulation_steps):
    if devices == 1:
        strategy = tf.distribute.get_strategy()  # The default: one device, no replicas.
    else:
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(devices)])
    with strategy.scope():
        model = build_classifier()
        optimizer = create_optimizer(
            model, 1e-3, total_steps=12, warmup_steps=2, clip_global_norm=1.0, accumulation_steps=accumulation_steps
        )
        compile_classifier(model, optimizer)
    record = Record()
    history = model.fit(
        toy_dataset(GLOBAL_BATCH // accumulation_steps), epochs=2, verbose=0, shuffle=False, callbacks=[record]
    )
    return {
        "replicas": strategy.num_replicas_in_sync,
        "losses": record.losses,
        "norms": record.norms,
        "epoch_losses": history.history["loss"],
        "steps": int(optimizer.iterations.numpy()),
        "weights": [w.tolist() for w in model.get_weights()],
    }


def weight_decay_factors():
    """Per-variable factor a zero-gradient step applies under the strategy: decay only."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = build_classifier()
        optimizer = create_optimizer(model, 0.1, total_steps=10, weight_decay=0.5)
        optimizer.build(model.trainable_variables)
    before = [w.numpy() for w in model.trainable_weights]
    zeros = [tf.zeros_like(w) for w in model.trainable_weights]
    tf.function(lambda: strategy.run(lambda: optimizer.apply(zeros, model.trainable_weights)))()
    return {
        w.path: float(np.sum(w.numpy() * b) / np.sum(b * b)) for w, b in zip(model.trainable_weights, before) if b.any()
    }


runs = {"one_device": train(1, 1), "two_devices": train(2, 1), "two_devices_accumulated": train(2, 2)}
reference = runs["one_device"].pop("weights")
for run in list(runs.values())[1:]:
    weights = run.pop("weights")
    run["max_weight_difference"] = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(weights, reference)
    )
runs["weight_decay_factors"] = weight_decay_factors()
print(json.dumps(runs))
