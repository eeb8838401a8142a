"""Parameter-efficient methods side by side on the real MiniLM: score, trainable share, speed, memory, file size.

For one task (movie-review sentiment, or WNUT-16 NER) the script trains, with the same budget
(epochs, batch size, data, seed, schedule), one model per method:

  full     full fine-tuning (the task's config in configs/)
  probe    frozen encoder, only the task head trains (a linear probe)
  lora     LoRA as in configs/sentiment_minilm_lora.yaml / configs/ner_wnut16_minilm_lora.yaml
  ia3      IA3 with peft's default targets
  bitfit   BitFit, every bias
  adalora  AdaLoRA, rank 12 -> 8 per module on every Dense of the blocks (budgeting 10-80 % of the steps)
  houlsby  Houlsby bottleneck adapters (after attention and feed-forward), reduction 16
  pfeiffer Pfeiffer bottleneck adapter (after the feed-forward block), reduction 16
  parallel parallel bottleneck adapter beside the feed-forward block (AdapterHub's par_bn)
  prefix   prefix tuning, 20 key/value prefixes per layer
  prompt   prompt tuning, 20 soft prompt tokens initialized from the vocabulary
  ptuning  P-tuning, 20 virtual tokens from an MLP prompt encoder

Each method runs in its own process, one after the other, so the peak memory is that method's.
A method's learning rate is its own (PEFT methods need larger steps than full fine-tuning); the
rest of the config is the task's. The table reports:

  dev / test     the task's monitored metric (accuracy, or entity F1) after the last epoch
  trainable      parameters that train, the head included, and the method's own parameters as a
                 share of the encoder's (the head excluded)
  step ms        median wall time of a training step (after the first 10), batch as configured
  ex/s           training examples per second over that median step
  peak RSS       the process's resident-set high-water mark (VmHWM)
  file           what the method stores per task: the adapter files (adapter_config.json +
                 adapter_model.safetensors), for full fine-tuning the whole model.safetensors
  speed          a separate phase, in one process: every method's model takes timed training
                 steps in turn (full, probe, lora, ... , full, probe, ...) on the same batch
                 (--batch-size rows of --seq-len tokens), so load from anything else on the
                 machine hits each alike; the median step and its ratio to full fine-tuning's

Example:
    python tools/bench_peft.py --task sentiment                       # ~2 h on 2 cores (12 methods)
    python tools/bench_peft.py --task ner                             # ~1.5 h
    python tools/bench_peft.py --task ner --methods full,lora --epochs 5
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = {
    "sentiment": {"config": "configs/sentiment_minilm.yaml", "lora": "configs/sentiment_minilm_lora.yaml"},
    "ner": {"config": "configs/ner_wnut16_minilm.yaml", "lora": "configs/ner_wnut16_minilm_lora.yaml"},
}
# The methods whose recipe is not a config file: their peft section and learning rate.
ALL_DENSE = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
RECIPES = {
    "probe": (None, 1e-3),
    "ia3": ({"method": "ia3"}, 3e-3),
    "bitfit": ({"method": "bitfit"}, 1e-3),
    # total_step, tinit and tfinal are filled in from the run's step count.
    "adalora": ({"method": "adalora", "init_r": 12, "target_r": 8, "lora_alpha": 32, "deltaT": 10,
                 "target_modules": ALL_DENSE}, 5e-3),
    "houlsby": ({"method": "houlsby"}, 1e-3),
    "pfeiffer": ({"method": "pfeiffer"}, 3e-3),
    "parallel": ({"method": "parallel"}, 1e-3),
    "prefix": ({"method": "prefix_tuning", "num_virtual_tokens": 20}, 1e-2),
    "prompt": ({"method": "prompt_tuning", "num_virtual_tokens": 20, "prompt_tuning_init": "SAMPLE_VOCAB"}, 3e-2),
    "ptuning": ({"method": "p_tuning", "num_virtual_tokens": 20, "encoder_hidden_size": 128}, 1e-2),
}
METHODS = ("full", "probe", "lora", *(m for m in RECIPES if m != "probe"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="sentiment")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--epochs", type=int, default=None, help="default: the task config's")
    parser.add_argument("--learning-rate", type=float, default=None, help="every method's (default: its own)")
    parser.add_argument("--out", default=None, help="write the results as JSON here too")
    parser.add_argument("--speed-steps", type=int, default=12, help="timed steps per method in the speed phase")
    parser.add_argument("--batch-size", type=int, default=32, help="speed phase batch")
    parser.add_argument("--seq-len", type=int, default=128, help="speed phase sequence length")
    parser.add_argument("--skip-training", action="store_true", help="only the speed phase")
    parser.add_argument("--skip-speed", action="store_true", help="only the training runs")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.methods.split(",")) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    return args


def method_config(task_name, method, epochs, total_steps=1000):
    """The run config of `method`: the task's config, with the method's peft section and learning
    rate; `total_steps` sets AdaLoRA's schedule."""
    from tfft.config import load_config
    from tfft.peft import parse_peft_config

    paths = TASKS[task_name]
    config = load_config(ROOT / (paths["lora"] if method == "lora" else paths["config"]))
    if epochs is not None:
        config.training.epochs = epochs
    if method in RECIPES:
        peft, config.training.learning_rate = RECIPES[method]
        if peft is not None and peft["method"] == "adalora":
            peft = {**peft, "total_step": total_steps, "tinit": total_steps // 10, "tfinal": total_steps // 5}
        config.peft = None if peft is None else parse_peft_config(peft, f"bench recipe {method!r}")
    for split in ("train", "dev", "test"):
        setattr(config.data, split, str(ROOT / getattr(config.data, split)))
    return config


class StepTimer:
    """Wall time of every training batch."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_train_batch_begin(self, batch, logs=None):
                self._start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.times.append(time.perf_counter() - self._start)

        return _Timer()


def peak_rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def directory_bytes(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def run_worker(task_name, method, epochs, learning_rate=None):
    """Trains one method and prints its result as one JSON line."""
    import keras

    from tfft.run import prepare_data
    from tfft.tasks import get_task
    from tfft.training import ProgressLogger, create_optimizer

    config = method_config(task_name, method, epochs)
    task = get_task(config.task)(config)
    splits = prepare_data(task)
    model = build_for(task, config, None, config.training.seed)
    train_ds = task.dataset(model, splits["train"], training=True)
    total_steps = int(train_ds.cardinality()) * config.training.epochs
    config = method_config(task_name, method, epochs, total_steps)
    t = config.training
    t.learning_rate = learning_rate or t.learning_rate
    apply_method(model, config, method)
    counts = model.trainable_parameters()
    encoder = counts["encoder"]
    own = counts.get("adapter", encoder if method == "full" else 0)  # the head is not the method's
    model.compile(optimizer=create_optimizer(model, t.learning_rate, total_steps, warmup_ratio=t.warmup_ratio,
                                             decay=t.decay, weight_decay=t.weight_decay,
                                             clip_global_norm=t.clip_global_norm))
    timer = StepTimer()
    progress = ProgressLogger(every_n_steps=100, total_steps=total_steps, batch_size=t.batch_size, epochs=t.epochs)
    model.fit(train_ds, epochs=t.epochs, callbacks=[timer, progress], verbose=0, shuffle=False)
    metric = task.monitor().removeprefix("val_")
    scores = {split: task.scalar_metrics(task.evaluate(model, splits[split]))[metric] for split in ("dev", "test")}
    with tempfile.TemporaryDirectory() as tmp:
        if config.peft is not None:
            model.save_adapter(tmp)
        elif method == "probe":
            from tfft.weights import save_state_dict

            head = {name: entry for name, entry in model.hf_weight_table().items()
                    if any(name.startswith(h + ".") for h in model.peft_head_modules)}
            save_state_dict({n: keras.ops.convert_to_numpy(v) for n, (v, _) in head.items()}, Path(tmp) / "head.safetensors")
        else:
            from tfft.encoders.encoder import hf_tensors
            from tfft.weights import save_state_dict

            save_state_dict(hf_tensors(model.hf_weight_table()), Path(tmp) / "model.safetensors")
        file_bytes = directory_bytes(tmp)
    step = statistics.median(timer.times[10:] or timer.times)
    print("RESULT " + json.dumps({
        "method": method, "metric": metric, "dev": scores["dev"], "test": scores["test"],
        "trainable": counts["trainable"], "own": own, "encoder": encoder,
        "step_ms": 1000 * step, "examples_per_s": t.batch_size / step, "peak_rss_mb": peak_rss_mb(),
        "file_bytes": file_bytes, "epochs": t.epochs, "learning_rate": t.learning_rate,
    }), flush=True)


def build_for(task, config, method, seed=0):
    import keras

    from tfft.hub import resolve_pretrained_dir

    keras.utils.set_random_seed(seed)
    model = task.build_model(resolve_pretrained_dir(config.model.checkpoint))
    apply_method(model, config, method)
    return model


def apply_method(model, config, method):
    if method == "probe":
        model.encoder.trainable = False
    elif method is not None and config.peft is not None:
        model.add_adapter("default", config.peft)


def run_speed(task_name, methods, steps, batch_size, seq_len):
    """Interleaved timed training steps of every method's model on one batch; prints one JSON line."""
    import numpy as np

    from tfft.tasks import get_task
    from tfft.training import create_optimizer

    rng = np.random.default_rng(0)
    lengths = np.concatenate([[seq_len], rng.integers(seq_len // 4, seq_len + 1, batch_size - 1)])
    mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype("int32")
    inputs = {"input_ids": (rng.integers(1000, 20000, (batch_size, seq_len)) * mask).astype("int32"),
              "attention_mask": mask, "token_type_ids": np.zeros_like(mask)}
    models = {}
    for method in methods:
        config = method_config(task_name, method, None)
        task = get_task(config.task)(config)
        task.fit_labels(task.read_split(config.data.train, "train"))
        model = build_for(task, config, method)
        if task_name == "sentiment":
            labels = rng.integers(0, model.num_labels, batch_size).astype("int32")
        else:
            labels = np.where(mask == 1, rng.integers(0, model.num_labels, mask.shape), -100).astype("int32")
        model.compile(optimizer=create_optimizer(model, config.training.learning_rate, 1000, warmup_steps=10))
        for _ in range(3):  # trace, then settle
            model.train_on_batch(inputs, labels)
        models[method] = (model, labels)
    times = {method: [] for method in methods}
    for _ in range(steps):
        for method, (model, labels) in models.items():
            start = time.perf_counter()
            model.train_on_batch(inputs, labels)
            times[method].append(time.perf_counter() - start)
    print("RESULT " + json.dumps({m: 1000 * statistics.median(t) for m, t in times.items()}), flush=True)


def main(argv=None):
    args = parse_args(argv)
    methods = args.methods.split(",")
    if args.worker == "speed":
        return run_speed(args.task, methods, args.speed_steps, args.batch_size, args.seq_len)
    if args.worker:
        return run_worker(args.task, args.worker, args.epochs, args.learning_rate)
    speed = {}
    if not args.skip_speed:
        speed = run_child([sys.executable, __file__, "--task", args.task, "--worker", "speed", "--methods",
                           args.methods, "--speed-steps", str(args.speed_steps), "--batch-size", str(args.batch_size),
                           "--seq-len", str(args.seq_len)], "speed")
        print_speed(speed, args)
    if args.skip_training:
        return
    results = []
    for method in methods:
        command = [sys.executable, __file__, "--task", args.task, "--worker", method]
        if args.epochs is not None:
            command += ["--epochs", str(args.epochs)]
        if args.learning_rate is not None:
            command += ["--learning-rate", str(args.learning_rate)]
        start = time.time()
        result = run_child(command, method)
        result["wall_s"] = time.time() - start
        result["speed_step_ms"] = speed.get(method)
        results.append(result)
    print_table(results)
    if args.out:
        Path(args.out).write_text(json.dumps({"speed": speed, "runs": results}, indent=2))


def run_child(command, label):
    """Runs a worker, echoing its progress lines; returns its RESULT JSON."""
    print(f"--- {label}", flush=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    result = None
    for line in process.stdout:
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
        elif line.startswith(("step ", "epoch ")):
            print("   ", line.rstrip(), flush=True)
    stderr = process.stderr.read()
    if process.wait() or result is None:
        print(stderr[-3000:])
        raise SystemExit(f"{label} failed (exit {process.returncode})")
    return result


def print_speed(speed, args):
    print(f"\nSpeed phase: median of {args.speed_steps} interleaved training steps, batch {args.batch_size} x "
          f"{args.seq_len} tokens")
    print("| method | step ms | ex/s | speed vs full |")
    print("|---|---|---|---|")
    for method, ms in speed.items():
        ratio = f"{speed['full'] / ms:.2f}x" if "full" in speed else "-"
        print(f"| {method} | {ms:.0f} | {1000 * args.batch_size / ms:.1f} | {ratio} |")


def print_table(results):
    full = next((r for r in results if r["method"] == "full"), None)
    print(f"\n| method | lr | dev {results[0]['metric']} | test | trainable (head incl.) | method params / encoder "
          f"| train step ms | ex/s | speed vs full | peak RSS MB | file |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        speed = f"{full['speed_step_ms'] / r['speed_step_ms']:.2f}x" if full and r.get("speed_step_ms") else "-"
        size = r["file_bytes"]
        size_text = f"{size / 1e6:.1f} MB" if size > 1e6 else f"{size / 1e3:.0f} KB"
        print(f"| {r['method']} | {r['learning_rate']:g} | {100 * r['dev']:.2f} | {100 * r['test']:.2f} "
              f"| {r['trainable']:,} | {r['own']:,} ({100 * r['own'] / r['encoder']:.2f}%) | {r['step_ms']:.0f} "
              f"| {r['examples_per_s']:.1f} | {speed} | {r['peak_rss_mb']:.0f} | {size_text} |")


if __name__ == "__main__":
    main()
