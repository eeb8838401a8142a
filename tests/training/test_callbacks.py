"""DevEvaluator, BestCheckpoint and TensorBoard in a real fit; the event files are read back."""

import json
from collections import defaultdict
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training.tiny import LABELS, build_tiny_classifier, compile_classifier, toy_data, toy_dataset
from tfft.training import BestCheckpoint, DevEvaluator, TensorBoard, confusion_matrix_image, create_optimizer


def read_events(directory):
    """{tag: [(step, plugin, value)]} from the event files directly in `directory`."""
    events = defaultdict(list)
    for path in sorted(Path(directory).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                events[value.tag].append((event.step, plugin, tf.make_ndarray(value.tensor)))
    return events


def test_fit_writes_tensorboard_metrics_and_best_checkpoint(tmp_path):
    pytest.importorskip("tensorboard", reason="the hparams summary needs the tensorboard package")
    model = build_tiny_classifier()
    compile_classifier(model, create_optimizer(model, 1e-2, total_steps=12, warmup_steps=2))
    dev_ids, dev_labels = toy_data(24, seed=1)
    evaluator = DevEvaluator((dev_ids, dev_labels), "classification", LABELS, output_dir=tmp_path)
    hparams = {"learning_rate": 1e-2, "decay": "linear", "accumulation_steps": 1, "labels": LABELS}
    callbacks = [
        evaluator,
        BestCheckpoint(tmp_path / "best", monitor="val_macro_f1"),
        TensorBoard(tmp_path / "tb", update_freq=2, hparams=hparams, evaluator=evaluator),
    ]
    history = model.fit(toy_dataset(8), epochs=2, verbose=0, shuffle=False, callbacks=callbacks)

    assert {"val_accuracy", "val_macro_f1", "val_micro_f1"} <= set(history.history)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epoch"] == 2 and metrics["step"] == 12 and metrics["num_examples"] == 24
    assert metrics["macro_f1"] == pytest.approx(history.history["val_macro_f1"][-1])
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert best["monitor"] == "val_macro_f1"
    assert best["best"] == pytest.approx(max(history.history["val_macro_f1"]))
    assert (tmp_path / "best" / "best.weights.h5").is_file()

    train = read_events(tmp_path / "tb" / "train")
    assert [step for step, _, _ in train["batch_loss"]] == [2, 4, 6, 8, 10, 12]
    for tag in ("learning_rate", "gradient_norm"):
        assert [step for step, _, _ in train[tag]] == [2, 4, 6, 8, 10, 12]
        assert all(plugin == "scalars" for _, plugin, _ in train[tag])
    assert train["learning_rate"][0][2] == pytest.approx(1e-2)  # Next update's rate after 2 warmup steps.
    assert all(float(value) > 0 for _, _, value in train["gradient_norm"])
    assert [step for step, _, _ in train["epoch_loss"]] == [0, 1]
    assert "epoch_learning_rate" in train

    validation = read_events(tmp_path / "tb" / "validation")
    assert validation["epoch_macro_f1"][-1][2] == pytest.approx(metrics["macro_f1"])
    assert {"epoch_accuracy", "epoch_micro_f1"} <= set(validation)
    [(step, plugin, image)] = validation["confusion_matrix"][-1:]
    assert (step, plugin) == (1, "images")
    png = tf.io.decode_png(image[2])  # [width, height, png bytes]
    assert png.shape[-1] == 3 and png.shape[0] > 3 * 30

    root = read_events(tmp_path / "tb")
    [(_, plugin, _)] = root["_hparams_/session_start_info"]
    assert plugin == "hparams"
    from tensorboard.plugins.hparams import plugin_data_pb2

    event_file = next((tmp_path / "tb").glob("events.out.tfevents.*"))
    for event in tf.compat.v1.train.summary_iterator(str(event_file)):
        for value in event.summary.value:
            if value.tag == "_hparams_/session_start_info":
                data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                written = data.session_start_info.hparams
                assert written["learning_rate"].number_value == pytest.approx(1e-2)
                assert written["decay"].string_value == "linear"
                assert written["labels"].string_value == str(LABELS)


def test_best_checkpoint_stops_early_and_restores_the_best_weights(tmp_path):
    model = build_tiny_classifier()
    compile_classifier(model, create_optimizer(model, 5e-2, total_steps=60))
    dev = toy_data(24, seed=1)
    # Dev labels unrelated to the inputs: dev loss rises as the model fits the training data.
    dev = (dev[0], (dev[1] + 1) % len(LABELS))
    checkpoint = BestCheckpoint(tmp_path / "best", monitor="val_loss", patience=2)
    history = model.fit(
        toy_dataset(8), validation_data=dev, epochs=10, verbose=0, shuffle=False, callbacks=[checkpoint]
    )

    epochs_run = len(history.history["loss"])
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert epochs_run == best["best_epoch"] + 3 < 10  # Two epochs of patience, then stop.
    assert best["best"] == pytest.approx(min(history.history["val_loss"]))
    assert int(model.optimizer.iterations.numpy()) == 6 * epochs_run  # Optimizer state as trained.
    restored = model.evaluate(*dev, verbose=0, return_dict=True)["loss"]
    assert restored == pytest.approx(best["best"], rel=1e-5)


@pytest.mark.parametrize(
    ("monitor", "mode"), [("val_loss", "min"), ("val_mse", "min"), ("val_macro_f1", "max"), ("val_pearson", "max")]
)
def test_best_checkpoint_infers_the_direction(tmp_path, monitor, mode):
    assert BestCheckpoint(tmp_path, monitor=monitor).mode == mode


def test_dev_evaluator_multilabel_and_regression_from_a_dataset():
    ids, labels = toy_data(16)
    multilabel = keras.utils.to_categorical(labels, len(LABELS))
    model = build_tiny_classifier()
    model.compile(loss="mse")
    evaluator = DevEvaluator(
        tf.data.Dataset.from_tensor_slices((ids, multilabel)).batch(5), "multilabel", LABELS, threshold=0.3
    )
    evaluator.set_model(model)
    metrics = evaluator.evaluate()
    assert metrics["task"] == "multilabel" and metrics["num_examples"] == 16 and metrics["threshold"] == 0.3

    evaluator = DevEvaluator((ids, labels.astype("float32")), "regression")
    evaluator.set_model(keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)]))
    assert set(evaluator.evaluate()) >= {"mse", "pearson", "spearman"}


def test_confusion_matrix_image_shades_rows():
    image = confusion_matrix_image([[5, 0], [1, 4]], ["negative", "positive"])
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] > 2 * 36 and image.shape[1] > 2 * 36
    assert (image == 255).all(axis=-1).mean() < 0.99  # Something is drawn.
