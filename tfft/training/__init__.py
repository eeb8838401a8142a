"""Training building blocks for `model.fit`.

- `create_optimizer`: AdamW with decoupled weight decay (not on LayerNorm or biases), linear or
  cosine warmup schedule, global-norm clipping, gradient accumulation, loss scaling for float16.
- `BackupAndResume`: backups during `fit`; SIGTERM/SIGINT stop after the batch; the same command
  resumes at the same step.
- `DevEvaluator`: dev metrics from `tfft.metrics` each epoch, into the logs and metrics.json.
- `BestCheckpoint`: best weights by a dev metric, early stopping.
- `TensorBoard`: loss, metrics, learning rate, gradient norm, hparams, confusion matrix.
- `ProgressLogger`: a progress line every N steps (step, loss, examples/s, ETA), for logs and pipes.

A run's callbacks, in this order:

    >>> dev = DevEvaluator((dev_x, dev_y), "classification", label_names, output_dir=run_dir)
    >>> callbacks = [
    ...     BackupAndResume(run_dir / "backup", save_freq=500),
    ...     dev,
    ...     BestCheckpoint(run_dir / "best", monitor="val_macro_f1", patience=3),
    ...     TensorBoard(run_dir / "tensorboard", update_freq=50, hparams=hparams, evaluator=dev),
    ... ]
    >>> model.fit(train, epochs=3, callbacks=callbacks)
"""

from tfft.training.checkpoints import BestCheckpoint
from tfft.training.evaluation import DevEvaluator
from tfft.training.optimizers import (
    AdamW,
    LossScaleOptimizer,
    create_optimizer,
    no_decay_variables,
    recommended_mixed_precision,
)
from tfft.training.progress import ProgressLogger
from tfft.training.resume import BackupAndResume, TrainingInterrupted
from tfft.training.schedules import WarmupCosineDecay, WarmupLinearDecay, warmup_schedule
from tfft.training.tensorboard import TensorBoard, confusion_matrix_image

__all__ = [
    "AdamW",
    "BackupAndResume",
    "BestCheckpoint",
    "DevEvaluator",
    "LossScaleOptimizer",
    "ProgressLogger",
    "TensorBoard",
    "TrainingInterrupted",
    "WarmupCosineDecay",
    "WarmupLinearDecay",
    "confusion_matrix_image",
    "create_optimizer",
    "no_decay_variables",
    "recommended_mixed_precision",
    "warmup_schedule",
]
