"""Trains a tiny BERT classifier with a LoRA adapter: on one device, on two logical CPU devices
(MirroredStrategy) with the same global batch, in mixed bfloat16 with XLA, and in mixed float16
(dynamic loss scaling).

Run by test_peft_training.py in its own process (logical devices must be set before TensorFlow
initializes). Prints one JSON line per run: losses, steps, trainable variable count, the
largest change of any frozen base weight, and the final adapter weights.
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

from tests.training.tiny import LABELS, toy_dataset  # noqa: E402
from tfft.encoders import BertEncoder, EncoderConfig  # noqa: E402
from tfft.peft import LoraConfig  # noqa: E402
from tfft.tasks import SequenceClassifier  # noqa: E402
from tfft.training import create_optimizer  # noqa: E402

GLOBAL_BATCH = 8


def train(devices, dtype=None, jit_compile=False):
    keras.utils.set_random_seed(0)
    strategy = (tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(devices)]) if devices > 1
                else tf.distribute.get_strategy())
    with strategy.scope():
        config = EncoderConfig(model_type="bert", vocab_size=128, hidden_size=16, num_layers=2, num_heads=2,
                               intermediate_size=32, hidden_dropout=0.0, attention_dropout=0.0)
        model = SequenceClassifier(BertEncoder(config, dtype=dtype), labels=LABELS, dtype=dtype)
        model.add_adapter("default", LoraConfig(r=4, lora_alpha=8, bias="lora_only"))
        frozen = [(v, v.numpy()) for v in model._adapters.frozen_variables()]
        optimizer = create_optimizer(model, 1e-2, total_steps=12, warmup_steps=2)
        model.compile(optimizer=optimizer, jit_compile=jit_compile)
    dataset = toy_dataset(GLOBAL_BATCH).map(lambda ids, y: ({"input_ids": ids}, y))
    history = model.fit(dataset, epochs=2, verbose=0, shuffle=False)
    return {
        "replicas": strategy.num_replicas_in_sync,
        "losses": history.history["loss"],
        "steps": int(optimizer.iterations.numpy()),
        "trainable": len(model.trainable_variables),
        "optimizer_variables": len(optimizer._trainable_variables),
        "optimizer": type(optimizer).__name__,
        "frozen_change": max(float(np.max(np.abs(v.numpy() - before))) for v, before in frozen),
        "adapter": [np.asarray(v.numpy(), np.float32).tolist() for v in model.trainable_variables],
    }


runs = {"one_device": train(1), "two_devices": train(2), "bf16_xla": train(1, "mixed_bfloat16", jit_compile=True),
        "fp16": train(1, "mixed_float16")}
reference = runs["one_device"]["adapter"]
for run in runs.values():
    run["max_adapter_difference"] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                                        for a, b in zip(run.pop("adapter"), reference))
print(json.dumps(runs))
