"""Training with a PEFT adapter: MirroredStrategy, mixed bfloat16 with XLA, resume and the best
checkpoint, which hold only the adapter's part."""

import json
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from tests.training.tiny import LABELS, toy_dataset
from tfft.peft import LoraConfig
from tfft.tasks import SequenceClassifier
from tfft.training import BackupAndResume, BestCheckpoint, create_optimizer

SCRIPT = Path(__file__).with_name("peft_script.py")
TOTAL_STEPS = 18


@pytest.fixture(scope="module")
def runs():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_two_devices_bf16_xla_and_fp16_train_only_the_adapter(runs):
    one, two, bf16, fp16 = runs["one_device"], runs["two_devices"], runs["bf16_xla"], runs["fp16"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert one["steps"] == two["steps"] == bf16["steps"] == 12
    # LoRA A and B of query and value in 2 layers, their 4 biases (bias="lora_only"), the head copy.
    assert one["trainable"] == two["trainable"] == bf16["trainable"] == 2 * 2 * 3 + 2
    assert one["optimizer_variables"] == one["trainable"]  # no optimizer state for frozen weights
    np.testing.assert_allclose(two["losses"], one["losses"], atol=2e-3)
    assert two["max_adapter_difference"] < 1e-4
    np.testing.assert_allclose(bf16["losses"], one["losses"], atol=2e-2)
    assert one["losses"][-1] < one["losses"][0]
    assert one["frozen_change"] == two["frozen_change"] == bf16["frozen_change"] == fp16["frozen_change"] == 0.0
    assert fp16["optimizer"] == "LossScaleOptimizer" and fp16["steps"] == 12
    np.testing.assert_allclose(fp16["losses"], one["losses"], atol=2e-2)


def _model():
    from tfft.encoders import BertEncoder, EncoderConfig

    keras.utils.set_random_seed(0)
    config = EncoderConfig(model_type="bert", vocab_size=128, hidden_size=16, num_layers=2, num_heads=2,
                           intermediate_size=32, hidden_dropout=0.0, attention_dropout=0.0)
    model = SequenceClassifier(BertEncoder(config), labels=LABELS)
    model.add_adapter("default", LoraConfig(r=4, lora_alpha=8))
    model.compile(optimizer=create_optimizer(model, 1e-2, total_steps=TOTAL_STEPS, warmup_steps=2))
    return model


def _fit(model, *callbacks):
    data = toy_dataset(8).map(lambda ids, y: ({"input_ids": ids}, y))
    model.fit(data, epochs=3, verbose=0, shuffle=False, callbacks=list(callbacks))
    return model


class CrashAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise RuntimeError("worker lost")


def test_resume_restores_the_adapter_and_its_backup_holds_only_that(tmp_path):
    reference = _fit(_model())
    with pytest.raises(RuntimeError, match="worker lost"):
        _fit(_model(), BackupAndResume(tmp_path / "backup", save_freq=2), CrashAt(9))
    backup = tmp_path / "backup" / "latest.weights.h5"
    with h5py.File(backup, "r") as f:
        assert f.attrs["tfft_adapter_part"] == 1
        stored = {f["model"][k].attrs["path"] for k in f["model"]}
    assert any("lora_A" in path for path in stored)
    assert not any(path.endswith("word_embeddings/embeddings") for path in stored)
    full = tmp_path / "full.weights.h5"
    reference.save_weights(full)
    assert backup.stat().st_size < full.stat().st_size / 2

    resumed = _fit(_model(), BackupAndResume(tmp_path / "backup", save_freq=2))
    assert int(resumed.optimizer.iterations.numpy()) == TOTAL_STEPS
    for a, b in zip(resumed.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_best_checkpoint_restores_the_best_adapter(tmp_path):
    class Score(keras.callbacks.Callback):  # best at epoch 2 of 3
        def on_epoch_end(self, epoch, logs=None):
            logs["val_score"] = [0.1, 0.9, 0.5][epoch]
            if epoch == 1:
                self.best = [v.numpy() for v in self.model.trainable_variables]

    score = Score()
    model = _fit(_model(), score, BestCheckpoint(tmp_path / "best", monitor="val_score"))
    with h5py.File(tmp_path / "best" / "best.weights.h5", "r") as f:
        assert f.attrs["tfft_adapter_part"] == 1
    for variable, best in zip(model.trainable_variables, score.best):
        np.testing.assert_array_equal(variable.numpy(), best)


def _weight_gradient_matmuls(model):
    """MatMuls of the form x^T·dy (a kernel's gradient) that the train step's outputs need."""
    import tensorflow as tf

    loss_fn = model.default_loss()

    @tf.function
    def step(ids, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model({"input_ids": ids}, training=True))
        return tape.gradient(loss, model.trainable_variables)

    graph = step.get_concrete_function(tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)).graph
    needed, stack = set(), [t.op for t in graph.outputs]
    while stack:  # what the function runtime executes: the ops the outputs depend on
        op = stack.pop()
        if op.name not in needed:
            needed.add(op.name)
            stack.extend([i.op for i in op.inputs] + list(op.control_inputs))
    return sum(1 for op in graph.get_operations()
               if op.name in needed and op.type == "MatMul" and op.get_attr("transpose_a"))


def test_frozen_kernels_get_no_weight_gradient_matmul():
    from tfft.encoders import BertEncoder, EncoderConfig

    config = EncoderConfig(model_type="bert", vocab_size=128, hidden_size=16, num_layers=2, num_heads=2,
                           intermediate_size=32)
    full = SequenceClassifier(BertEncoder(config), labels=LABELS)
    assert _weight_gradient_matmuls(full) == 2 * 6 + 2  # every Dense of 2 layers, the pooler, the head
    full.add_adapter("default", LoraConfig(r=2, target_modules=["query", "value"]))
    assert _weight_gradient_matmuls(full) == 2 * 2 * 2 + 1  # lora_A and lora_B of 4 modules, the head copy
