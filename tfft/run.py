"""A whole run from a `RunConfig`: read and check data, fine-tune, evaluate, save, export.

The CLI's `tfft train/evaluate/predict/export` call these functions; scripts can too. Everything
a user can get wrong (config, checkpoint path, data rows, labels) is checked before the run
directory is created, so a failed start leaves nothing behind. A run directory holds:

    config.yaml      the resolved config            labels.json   the label vocabulary
    backup/          resumable checkpoints          best/         best weights by the dev metric
    tensorboard/     TensorBoard logs               metrics.json  dev and test metrics
    model.keras      the fine-tuned model (tokenizer inside)
    export/<version>/  SavedModel for TF Serving
"""

import dataclasses
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from tfft.config import RunConfig
from tfft.errors import ConfigError, TfftError

TASKS = {
    "single_label_classification": ("single_label", "classification"),
    "multi_label_classification": ("multi_label", "multilabel"),
    "regression": ("regression", "regression"),
}


@dataclasses.dataclass
class PreparedData:
    train: object
    dev: object
    test: object
    label_vocab: object


def _read(path, config, key):
    from tfft.data import read_examples

    if not Path(path).is_file():
        raise ConfigError(f"data.{key}: file not found: {path}")
    return read_examples(  # logs "N bad rows skipped" itself under on_bad_row: skip
        path,
        text_column=config.data.text_column,
        text_pair_column=config.data.text_pair_column,
        label_column=config.data.label_column,
        on_bad_row=config.data.on_bad_row,
    )


def prepare_data(config: RunConfig):
    """Reads every data file and checks every label against the vocabulary."""
    from tfft.data import LabelVocab

    problem, _ = TASKS[config.model.problem_type]
    train = _read(config.data.train, config, "train")
    if config.model.labels:
        vocab = LabelVocab(problem_type=problem, names=tuple(config.model.labels))
    else:
        vocab = LabelVocab.from_examples(train, problem_type=problem)
    dev = _read(config.data.dev, config, "dev") if config.data.dev else None
    test = _read(config.data.test, config, "test") if config.data.test else None
    for examples in (train, dev, test):
        if examples is not None:
            vocab.encode(examples)  # raises DataError naming file, line and label
    return PreparedData(train, dev, test, vocab)


def _strategy(name):
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def train(config: RunConfig, verbose=1):
    """Fine-tunes, evaluates on dev and test, saves and exports. Returns the metrics dict."""
    from tfft.data import make_dataset
    from tfft.hub import resolve_pretrained_dir
    from tfft.metrics import format_report, save_metrics
    from tfft.tasks import SequenceClassifier
    from tfft.training import BackupAndResume, BestCheckpoint, DevEvaluator, TensorBoard, create_optimizer

    run_dir = Path(config.run_dir)
    if (run_dir / "metrics.json").exists():
        raise ConfigError(f"run_dir {run_dir} already holds a finished run (metrics.json); choose another run_dir")
    checkpoint = resolve_pretrained_dir(config.model.checkpoint)
    data = prepare_data(config)
    _, task = TASKS[config.model.problem_type]
    t = config.training
    keras.utils.set_random_seed(t.seed)
    if t.mixed_precision:
        keras.mixed_precision.set_global_policy(t.mixed_precision)

    strategy = _strategy(t.distribute)
    with strategy.scope():
        model = SequenceClassifier.from_pretrained(
            checkpoint,
            labels=list(data.label_vocab.names) or None,
            num_labels=None if data.label_vocab.names else 1,
            problem_type=config.model.problem_type,
            pooling=config.model.pooling,
            dropout=config.model.dropout,
            text_pair=config.data.text_pair_column is not None,
        )
    tokenizer = model.tokenizer
    bucket = "auto" if config.data.bucket_by_length else None
    common = dict(batch_size=t.batch_size, max_length=config.data.max_length)
    train_ds = make_dataset(data.train, tokenizer, data.label_vocab, shuffle=True, seed=t.seed,
                            bucket_boundaries=bucket, **common)
    dev_ds = make_dataset(data.dev, tokenizer, data.label_vocab, **common) if data.dev else None
    test_ds = make_dataset(data.test, tokenizer, data.label_vocab, **common) if data.test else None
    steps_per_epoch = int(train_ds.cardinality())
    total_steps = max(1, steps_per_epoch * t.epochs // t.accumulation_steps)

    with strategy.scope():
        optimizer = create_optimizer(
            model,
            t.learning_rate,
            total_steps,
            warmup_ratio=t.warmup_ratio,
            decay=t.decay,
            weight_decay=t.weight_decay,
            clip_global_norm=t.clip_global_norm,
            accumulation_steps=t.accumulation_steps,
            mixed_precision=t.mixed_precision,
        )
        model.compile(optimizer=optimizer, jit_compile=t.jit_compile)

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    (run_dir / "labels.json").write_text(data.label_vocab.to_json(), encoding="utf-8")

    callbacks = [BackupAndResume(run_dir / "backup", save_freq=t.checkpoint_every_steps)]
    evaluator = None
    if dev_ds is not None:
        evaluator = DevEvaluator(dev_ds, task, label_names=data.label_vocab.names or None)
        callbacks += [
            evaluator,
            BestCheckpoint(run_dir / "best", monitor=t.monitor, patience=t.early_stopping_patience),
        ]
    hparams = {k: v for k, v in {**dataclasses.asdict(t), **dataclasses.asdict(config.model)}.items()
               if isinstance(v, (int, float, str, bool))}
    callbacks.append(TensorBoard(run_dir / "tensorboard", update_freq=t.log_every_steps, hparams=hparams,
                                 evaluator=evaluator))
    model.fit(train_ds, epochs=t.epochs, callbacks=callbacks, verbose=verbose,
              shuffle=False)  # train_ds shuffles itself

    metrics = {"steps": int(keras.ops.convert_to_numpy(model.optimizer.iterations))}
    splits = {"train": data.train, "dev": data.dev, "test": data.test}
    skipped = {split: e.skipped.count for split, e in splits.items() if e is not None and e.skipped.count}
    if skipped:
        metrics["skipped_rows"] = skipped
    for split, dataset in (("dev", dev_ds), ("test", test_ds)):
        if dataset is not None:
            metrics[split] = evaluate_dataset(model, dataset, task, data.label_vocab, verbose=verbose)
            print(f"\n{split} metrics ({getattr(data, split).source}):\n{format_report(metrics[split])}")
    model.save(run_dir / "model.keras")
    if config.export.enabled:
        from tfft.export import export_saved_model

        path = export_saved_model(model, run_dir / "export", version=config.export.version,
                                  max_length=config.data.max_length)
        print(f"SavedModel for TF Serving: {path}")
    save_metrics(metrics, run_dir / "metrics.json")
    shutil.rmtree(run_dir / "backup", ignore_errors=True)  # finished: nothing left to resume
    return metrics


def evaluate_dataset(model, dataset, task, label_vocab, verbose=0):
    """Metrics of `model` on a batched (inputs, labels) dataset; `verbose=1` shows a progress bar."""
    from tfft.metrics import classification_metrics, multilabel_metrics, regression_metrics

    labels = np.concatenate([np.asarray(y) for _, y in dataset.as_numpy_iterator()])
    scores = np.asarray(model.predict(dataset.map(lambda x, y: x), verbose=verbose), np.float64)
    if task == "classification":
        return classification_metrics(labels, scores, list(label_vocab.names))
    if task == "multilabel":
        return multilabel_metrics(labels, 1.0 / (1.0 + np.exp(-scores)), list(label_vocab.names))
    return regression_metrics(labels, scores[:, 0])


def load_run_model(run_dir):
    """The fine-tuned model of a finished run (its tokenizer attached)."""
    import tfft.tasks  # noqa: F401  (registers the task classes with Keras before loading)

    path = Path(run_dir) / "model.keras"
    if not path.is_file():
        raise TfftError(f"no trained model at {path}: train first (tfft train CONFIG)")
    return keras.saving.load_model(path, compile=False)  # inference only: no optimizer state needed


def load_run_config(run_dir):
    from tfft.config import config_from_dict

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise TfftError(f"{run_dir} is not a tfft run directory (no config.yaml)")
    return config_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path))


def evaluate(run_dir, data_path, verbose=0):
    """Metrics of a finished run's model on a labelled file; `verbose=1` shows a progress bar."""
    from tfft.data import LabelVocab, make_dataset

    config = load_run_config(run_dir)
    model = load_run_model(run_dir)
    vocab = LabelVocab.from_json((Path(run_dir) / "labels.json").read_text(encoding="utf-8"))
    examples = _read(data_path, config, "evaluate")
    vocab.encode(examples)
    dataset = make_dataset(examples, model.tokenizer, vocab, batch_size=config.training.batch_size,
                           max_length=config.data.max_length)
    return evaluate_dataset(model, dataset, TASKS[config.model.problem_type][1], vocab, verbose=verbose)


def predict(run_dir, texts, text_pairs=None, batch_size=32, progress=False):
    """Yields a finished run's prediction for each text, a batch at a time (see
    `SequenceClassifier.predict_texts`); `progress=True` shows a progress bar on stderr."""
    from tqdm import tqdm

    config = load_run_config(run_dir)
    model = load_run_model(run_dir)
    with tqdm(total=len(texts), unit="text", desc="predict", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(texts), batch_size):
            pairs = None if text_pairs is None else text_pairs[start : start + batch_size]
            results = model.predict_texts(texts[start : start + batch_size], pairs, batch_size=batch_size,
                                          max_length=config.data.max_length)
            bar.update(len(results))
            yield from results


def export(run_dir, export_dir=None, version=None):
    from tfft.export import export_saved_model

    config = load_run_config(run_dir)
    model = load_run_model(run_dir)
    return export_saved_model(model, export_dir or Path(run_dir) / "export", version=version,
                              max_length=config.data.max_length)
