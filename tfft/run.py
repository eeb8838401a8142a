"""A whole run from a `RunConfig`: read and check data, fine-tune, evaluate, save, export.

The CLI's `tfft train/evaluate/predict/export` call these functions; scripts can too. Everything
a user can get wrong (config, checkpoint path, data rows, labels) is checked before the run
directory is created, so a failed start leaves nothing behind. A run directory holds:

    config.yaml      the resolved config            labels.json   the label vocabulary
    backup/          resumable checkpoints          best/         best weights by the dev metric
    tensorboard/     TensorBoard logs               metrics.json  dev and test metrics
    model.keras      the fine-tuned model (tokenizer inside)
    export/<version>/  SavedModel for TF Serving

With a `peft:` section the run trains an adapter on the frozen base and keeps, instead of
model.keras, `adapter/` (Hugging Face PEFT's files: adapter_config.json and
adapter_model.safetensors) and `base_model.json`, the reference to the base checkpoint (never a
copy of it) with its weights' SHA-256, checked when the run's model is loaded. The export is
the merged model.
"""

import contextlib
import shutil
import sys
from pathlib import Path

import keras
import yaml

from tfft.config import RunConfig
from tfft.errors import ConfigError, TfftError


def prepare_data(task):
    """Reads every data file of the config and checks every label against the task's vocabulary.

    Returns {"train": ..., "dev": ... or None, "test": ... or None}.
    """
    data = task.config.data
    splits = {"train": task.read_split(data.train, "train")}
    task.fit_labels(splits["train"])
    for split in ("dev", "test"):
        path = getattr(data, split)
        splits[split] = task.read_split(path, split) if path else None
    for examples in splits.values():
        if examples is not None:
            task.check(examples)
    return splits


def train(config: RunConfig, verbose=1, callbacks=()):
    """Fine-tunes, evaluates on dev and test, saves and exports. Returns the metrics dict.

    `verbose`: 1 a live progress bar, 2 a line every `training.log_every_steps` steps and one
    per epoch (for files and pipes), 0 nothing. `callbacks`: more Keras callbacks for `fit`.

    Under `training.distribute: multi_worker_mirrored` every worker runs this with the same
    config (TF_CONFIG says which worker it is): all train, and only the chief writes the run
    directory, evaluates and exports; another worker returns {"task", "steps", "worker"} after
    `fit`. `run_dir` must be storage that every worker reads (the backup is resumed from it).
    """
    from tfft.hub import resolve_pretrained_dir
    from tfft.distribute import create_strategy, local_inference, wait_for_all_workers, worker_lost_errors, worker_role
    from tfft.tasks import get_task
    from tfft.training import BackupAndResume, BestCheckpoint, DevEvaluator, ProgressLogger, TensorBoard
    from tfft.training import create_optimizer

    run_dir = Path(config.run_dir)
    if (run_dir / "metrics.json").exists():
        raise ConfigError(f"run_dir {run_dir} already holds a finished run (metrics.json); choose another run_dir")
    task = get_task(config.task)(config)
    checkpoint = resolve_pretrained_dir(config.model.checkpoint)
    splits = prepare_data(task)
    t = config.training
    keras.utils.set_random_seed(t.seed)
    if t.mixed_precision:
        keras.mixed_precision.set_global_policy(t.mixed_precision)

    strategy = create_strategy(t.distribute, cluster_timeout=t.cluster_timeout)
    role = worker_role(strategy)
    if role.multi_worker and t.batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"training.batch_size {t.batch_size} (the global batch) does not split evenly over "
                          f"{strategy.num_replicas_in_sync} replicas of {role.num_workers} workers")
    with strategy.scope():
        model = task.build_model(checkpoint)
        if config.peft is not None:
            config.peft = model.add_adapter("default", config.peft)  # config.yaml records the resolved fields
    if config.peft is not None and verbose:
        model.print_trainable_parameters()
    train_ds = task.dataset(model, splits["train"], training=True)
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

    config.training.monitor = task.monitor()  # config.yaml records the metric that was used
    if role.is_chief:  # the other workers of a multi-worker run write nothing shared
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
        task.save_state(run_dir)

    backup = BackupAndResume(run_dir / "backup", save_freq=t.checkpoint_every_steps, worker=role)
    callbacks = [backup, *callbacks]
    evaluator = None
    if splits["dev"] is not None:  # every worker evaluates (the same numbers), so all stop early together
        def dev_metrics(m):
            with local_inference(m):
                return task.evaluate(m, splits["dev"])

        evaluator = DevEvaluator(metrics_fn=dev_metrics, scalars_fn=task.scalar_metrics)
        callbacks += [evaluator, BestCheckpoint(run_dir / "best", monitor=task.monitor(),
                                                patience=t.early_stopping_patience, write=role.is_chief)]
    if role.is_chief:
        callbacks.append(TensorBoard(run_dir / "tensorboard", update_freq=t.log_every_steps,
                                     hparams=task.hparams(), evaluator=evaluator))
    if verbose == 2:
        callbacks.append(ProgressLogger(every_n_steps=t.log_every_steps, total_steps=total_steps,
                                        batch_size=t.batch_size, epochs=t.epochs))
    try:
        model.fit(train_ds, epochs=t.epochs, callbacks=callbacks, verbose=1 if verbose == 1 else 0,
                  shuffle=False)  # train_ds shuffles itself
    except worker_lost_errors() as error:
        if not role.multi_worker:
            raise
        raise WorkerLost(role, error, backup.saved_step) from None

    metrics = {"task": task.name, "steps": int(keras.ops.convert_to_numpy(model.optimizer.iterations))}
    if not role.is_chief:  # done when the chief is: it evaluates and exports meanwhile
        try:
            wait_for_all_workers(strategy)
        except worker_lost_errors():
            raise TfftError(f"worker {role.index} of {role.num_workers}: trained to the end, but the chief stopped "
                            "before it finished the run (its output says why)") from None
        return {**metrics, "worker": role.index}
    try:
        with local_inference(model):
            return _finish(config, task, model, splits, metrics, checkpoint, verbose)
    finally:  # also when the run failed: the chief's error is the job's, the others end
        with contextlib.suppress(*worker_lost_errors()):  # (a worker that is gone waits no more)
            wait_for_all_workers(strategy)


class WorkerLost(TfftError):
    """`fit` of a multi-worker run stopped because another worker stopped or became unreachable.

    `tfft train` exits with 143, as a worker stopped by SIGTERM does: both mean "stopped; run the
    same command again to resume", and a Kubeflow TFJob with `restartPolicy: ExitCode` restarts
    a worker that exits with 128 or more (a config error, exit 2, fails the job at once).
    """

    exit_code = 143

    def __init__(self, role, error, saved_step):
        first = str(getattr(error, "message", error)).strip().splitlines()
        detail = next((line for line in first if "unhealthy" in line or "down" in line), first[0] if first else "")
        resume = (f"the last backup is at step {saved_step}" if saved_step is not None
                  else "no backup was saved yet (training.checkpoint_every_steps sets how often)")
        super().__init__(f"worker {role.index} of {role.num_workers}: training stopped because another worker "
                         f"stopped or became unreachable ({detail.strip()}); {resume}: start every worker again "
                         "with the same command to resume")


def _finish(config, task, model, splits, metrics, checkpoint, verbose):
    """After `fit`, on the chief: evaluation, the model or adapter, the export and metrics.json."""
    from tfft.metrics import save_metrics

    run_dir = Path(config.run_dir)
    skipped = {split: e.skipped.count for split, e in splits.items() if e is not None and e.skipped.count}
    if skipped:
        metrics["skipped_rows"] = skipped
    task.after_fit(model, splits)
    if config.peft is not None:
        model.merge_adapter()  # evaluation at the base model's cost
    for split in ("dev", "test"):
        if splits[split] is not None:
            metrics[split] = task.evaluate(model, splits[split], verbose=1 if verbose == 1 else 0)
            print(f"\n{split} metrics ({splits[split].source}):\n{task.format_report(metrics[split])}")
    if config.peft is not None:
        model.save_adapter(run_dir / ADAPTER_DIR, base_model_name_or_path=str(checkpoint))
        write_base_reference(run_dir, config.model.checkpoint, checkpoint, model.head_config())
        model.fold_adapters()  # the export: the merged plain model, or the base with the adapter in its graph
    else:
        from tfft.training.weights import without_optimizer

        with without_optimizer(model):  # inference weights once; resuming uses backup/, removed below
            model.save(run_dir / "model.keras")
    if config.export.enabled:
        from tfft.export import export_saved_model

        path = export_saved_model(model, run_dir / "export", version=config.export.version,
                                  max_length=task.export_max_length(), task=task.name)
        print(f"SavedModel for TF Serving: {path}")
    save_metrics(metrics, run_dir / "metrics.json")
    shutil.rmtree(run_dir / "backup", ignore_errors=True)  # finished: nothing left to resume
    return metrics


ADAPTER_DIR = "adapter"
BASE_REFERENCE = "base_model.json"


def _weights_digest(checkpoint_dir):
    import hashlib

    digest = hashlib.sha256()
    files = sorted(Path(checkpoint_dir).glob("*.safetensors")) or sorted(Path(checkpoint_dir).glob("*.bin"))
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def write_base_reference(run_dir, spec, checkpoint_dir, head_config):
    """`base_model.json`: the base checkpoint, its weights' digest, and the head's fields as
    trained (what `after_fit` set, e.g. a no-answer threshold, which the base config lacks)."""
    from tfft.weights import write_json_atomic

    write_json_atomic({"checkpoint": spec, "resolved_path": str(checkpoint_dir),
                       "weights_sha256": _weights_digest(checkpoint_dir), "head_config": head_config},
                      Path(run_dir) / BASE_REFERENCE)


def _read_base_reference(run_dir):
    """The base checkpoint directory of a PEFT run, checked against the digest taken at training,
    and the head's fields as trained."""
    import json

    from tfft.hub import resolve_pretrained_dir

    path = Path(run_dir) / BASE_REFERENCE
    if not path.is_file():
        raise TfftError(f"{run_dir} has an adapter but no {BASE_REFERENCE} naming its base checkpoint")
    reference = json.loads(path.read_text(encoding="utf-8"))
    checkpoint = resolve_pretrained_dir(reference["checkpoint"])
    if _weights_digest(checkpoint) != reference["weights_sha256"]:
        raise TfftError(f"{path}: the base checkpoint {reference['checkpoint']} ({checkpoint}) is not the one the "
                        "adapter was trained on (its weights' SHA-256 differs)")
    return checkpoint, reference["head_config"]


def _with_head_config(model, head_config):
    """`model` with the head fields `head_config` (a rebuilt copy where they differ)."""
    import json

    if json.loads(json.dumps(model.head_config())) == head_config:
        return model
    rebuilt = type(model).from_config({**model.get_config(), **head_config})
    rebuilt.set_weights(model.get_weights())
    rebuilt.tokenizer = model.tokenizer
    return rebuilt


def load_run_model(run_dir, task=None):
    """The fine-tuned model of a finished run (its tokenizer attached). A PEFT run's model is
    its base checkpoint with the adapter loaded and merged (inference at the base's cost)."""
    import tfft.tasks  # noqa: F401  (registers the task classes with Keras before loading)

    run_dir = Path(run_dir)
    if (run_dir / ADAPTER_DIR).is_dir():
        task = task or load_run_task(run_dir)
        checkpoint, head_config = _read_base_reference(run_dir)
        model = _with_head_config(task.build_model(checkpoint), head_config)
        model.load_adapter(run_dir / ADAPTER_DIR)
        model.merge_adapter()
        return model
    path = run_dir / "model.keras"
    if not path.is_file():
        raise TfftError(f"no trained model at {path}: train first (tfft train CONFIG)")
    return keras.saving.load_model(path, compile=False)  # inference only: no optimizer state needed


def load_run_config(run_dir):
    from tfft.config import config_from_dict

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise TfftError(f"{run_dir} is not a tfft run directory (no config.yaml)")
    return config_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path))


def load_run_task(run_dir):
    """The task of a finished run, its state (labels) loaded."""
    from tfft.tasks import get_task

    config = load_run_config(run_dir)
    task = get_task(config.task)(config)
    task.load_state(Path(run_dir))
    return task


def evaluate(run_dir, data_path, verbose=0):
    """Metrics of a finished run's model on a labelled file; `verbose=1` shows a progress bar."""
    task = load_run_task(run_dir)
    model = load_run_model(run_dir, task)
    examples = task.read_split(data_path, "evaluate")
    task.check(examples)
    return task.evaluate(model, examples, verbose=verbose)


def predict(run_dir, inputs, batch_size=32, progress=False, locations=None):
    """Yields (input record, prediction) for each input of a finished run's model, a batch at a time.

    An input is a dict of the task's `input_fields` or a string: plain text, or a JSON object
    with those fields (`Task.parse_input`); `locations` name the inputs in error messages
    ("input 3" by default). `progress=True` shows a progress bar on stderr.
    """
    from tqdm import tqdm

    task = load_run_task(run_dir)
    records = [item if isinstance(item, dict) else
               task.parse_input(item, locations[i] if locations else f"input {i + 1}")
               for i, item in enumerate(inputs)]
    model = load_run_model(run_dir, task)
    with tqdm(total=len(records), unit="input", desc="predict", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            results = task.predict(model, batch, batch_size=batch_size)
            bar.update(len(results))
            yield from zip(batch, results)


def export(run_dir, export_dir=None, version=None, format="saved_model", int8=False, optimize=False):
    """Exports a finished run's model; returns the path written.

    `format="saved_model"`: `<export_dir>/<version>/` for TF Serving (default `RUN_DIR/export`),
    with Keras' int8 weights when `int8`. `format="onnx"`: an `export_onnx` directory (default
    `RUN_DIR/onnx`, or `RUN_DIR/onnx-<n>` when that exists) with `model.onnx` checked against
    TensorFlow, and `model.int8.onnx` when `int8`; `optimize` adds onnxruntime's transformer
    optimizer where it stays exact.
    """
    from tfft.export import export_onnx, export_saved_model

    if format not in ("saved_model", "onnx"):
        raise ConfigError(f"unknown export format {format!r}; expected saved_model or onnx")
    task = load_run_task(run_dir)
    model = load_run_model(run_dir, task)
    if model.peft_config:
        model.fold_adapters()
    if format == "onnx":
        target = Path(export_dir) if export_dir else _free_dir(Path(run_dir) / "onnx")
        return export_onnx(model, target, max_length=task.export_max_length(), optimize=optimize, quantize=int8,
                           task=task.name).directory
    if int8:
        from tfft.export.quantize import quantize_model_int8

        quantize_model_int8(model)
    return export_saved_model(model, export_dir or Path(run_dir) / "export", version=version,
                              max_length=task.export_max_length(), task=task.name,
                              model_name=None if export_dir else Path(run_dir).resolve().name)


def _free_dir(path):
    """`path`, or `path-2`, `path-3`, ... where it exists: an export never overwrites another."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate
