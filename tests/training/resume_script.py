"""A tiny `fit` with tfft's callbacks that can stop itself with SIGTERM, for test_resume.py.

    python resume_script.py RUN_DIR OUT_JSON [--interrupt-at-step N]

With --interrupt-at-step, the process sends itself SIGTERM when the optimizer reaches step N
(mid-epoch), as a job scheduler would; BackupAndResume then saves and exits with code 143.
Running the same command again resumes. OUT_JSON gets the final step, the per-step losses this
process saw, and the final weights.
"""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import keras  # noqa: E402

from tests.training.tiny import LABELS, build_tiny_classifier, compile_classifier, toy_data, toy_dataset  # noqa: E402
from tfft.training import BackupAndResume, BestCheckpoint, DevEvaluator, create_optimizer  # noqa: E402

EPOCHS, BATCH, EXAMPLES = 3, 8, 48  # 6 batches an epoch, 18 steps.

parser = argparse.ArgumentParser()
parser.add_argument("run_dir", type=Path)
parser.add_argument("out", type=Path)
parser.add_argument("--interrupt-at-step", type=int)
args = parser.parse_args()


class Recorder(keras.callbacks.Callback):
    """Records (step, loss) per batch; sends SIGTERM to this process at the given step."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if logs:
            self.steps.append([step, float(logs["loss"])])
        if step == args.interrupt_at_step:
            os.kill(os.getpid(), signal.SIGTERM)


model = build_tiny_classifier()
compile_classifier(model, create_optimizer(model, 1e-2, total_steps=EPOCHS * EXAMPLES // BATCH, warmup_steps=3))
dev_ids, dev_labels = toy_data(24, seed=1)
recorder = Recorder()
callbacks = [
    BackupAndResume(args.run_dir / "backup", save_freq=4),
    DevEvaluator((dev_ids, dev_labels), "classification", LABELS, output_dir=args.run_dir),
    BestCheckpoint(args.run_dir / "best", monitor="val_macro_f1"),
    recorder,
]
try:
    model.fit(toy_dataset(BATCH, n=EXAMPLES), epochs=EPOCHS, verbose=0, shuffle=False, callbacks=callbacks)
finally:
    args.out.write_text(
        json.dumps(
            {
                "step": int(model.optimizer.iterations.numpy()),
                "losses": recorder.steps,
                "weights": [w.tolist() for w in model.get_weights()],
            }
        )
    )
