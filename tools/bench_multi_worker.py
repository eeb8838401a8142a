"""Multi-worker scaling on this machine: 1, 2 and 3 local workers training one tiny BERT.

    python tools/bench_multi_worker.py [--workers 1 2 3] [--steps 40] [--global-batch 24]

For each worker count it starts that many workers with `launch_local_workers` (127.0.0.1, free
ports, a TF_CONFIG each), every one under MultiWorkerMirroredStrategy, even alone, so that every
row runs the same collective code path. Each worker is pinned to its own core where there are
enough (`os.sched_setaffinity`; with more workers than cores they share round-robin), with
TensorFlow's intra-op threads set to its cores' count. Every worker trains the same text
classifier through `tfft.run.train` on the same global batch (split across workers, strong
scaling) and the chief reports:

- steps/s and examples/s over the steps after the first few (tracing and warm-up excluded);
- the all-reduce share of the step: the median time of one all-reduce of tensors shaped like
  every gradient, run alone by the same strategy, over the median step time;
- the CollectiveReduceV2 ops in the traced train step: the gradients really go through the
  collective path, not a local copy.

This shows the collective path is used and what it costs here; it does not claim a speedup: on
2 cores, 2 workers split the same cores one process had. The encoder is random-init (no
checkpoint needed): hidden 128, 4 layers, 4 heads, intermediate 512, the bert_uncased fixture
tokenizer, sequences of up to 64 tokens from the bundled movie reviews.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WARMUP_STEPS = 5


def _pin():
    """Pins this worker to the cores in TFFT_BENCH_CPUS and sizes TensorFlow's pools to them;
    runs before TensorFlow is imported."""
    cpus = [int(c) for c in os.environ["TFFT_BENCH_CPUS"].split(",")]
    os.sched_setaffinity(0, cpus)
    os.environ["OMP_NUM_THREADS"] = str(len(cpus))
    return cpus


def worker(config_path, result_path):
    cpus = _pin()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(len(cpus))
    tf.config.threading.set_inter_op_parallelism_threads(2)
    import keras

    from tfft.config import load_config
    from tfft.distribute import read_cluster
    from tfft.run import train

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_begin(self, batch, logs=None):
            if not self.ends:
                self.ends.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

        def on_train_end(self, logs=None):
            self.result = {"step_times": [b - a for a, b in zip(self.ends, self.ends[1:])],
                           "collectives": _collectives(self.model.train_function),
                           "allreduce": _time_allreduce(self.model),
                           "gradient_floats": sum(int(v.shape.num_elements()) for v in self.model.trainable_variables)}

    timer = Timer()
    train(load_config(config_path), verbose=0, callbacks=[timer])
    cluster = read_cluster()
    if cluster is None or cluster.is_chief:
        Path(result_path).write_text(json.dumps({**timer.result, "cpus": cpus}))


def _collectives(function):
    """The CollectiveReduceV2 ops in the traced graphs of the tf.functions that `function`
    (Keras's train function, a Python wrapper) calls, and in the functions they call."""
    seen, graphs = set(), []

    def visit(f, depth=0):
        if id(f) in seen or depth > 6:
            return
        seen.add(id(f))
        if hasattr(f, "_list_all_concrete_functions"):  # a tf.function
            graphs.extend(c.graph.as_graph_def() for c in f._list_all_concrete_functions())
            f = f.python_function
        for cell in getattr(f, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if callable(value):
                visit(value, depth + 1)

    visit(function)
    nodes = [n for g in graphs for n in [*g.node, *(m for f in g.library.function for m in f.node_def)]]
    return sum(n.op == "CollectiveReduceV2" for n in nodes)


def _time_allreduce(model, repeats=20):
    """Median seconds of one all-reduce of tensors shaped like the trainable gradients."""
    import tensorflow as tf

    strategy = model.distribute_strategy
    shapes = [tuple(v.shape) for v in model.trainable_variables]

    @tf.function
    def allreduce():
        def replica_fn():
            context = tf.distribute.get_replica_context()
            return context.all_reduce("SUM", [tf.ones(s) for s in shapes])

        return strategy.run(replica_fn)

    allreduce()  # traced and warmed once
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = allreduce()
        strategy.experimental_local_results(result)[0][0].numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_checkpoint(directory):
    from tfft.encoders import BertEncoder, EncoderConfig
    from tfft.tokenizers import Tokenizer

    tokenizer = Tokenizer.from_pretrained(ROOT / "tests" / "fixtures" / "tokenizers" / "bert_uncased")
    config = EncoderConfig(model_type="bert", vocab_size=tokenizer.vocab_size, hidden_size=128, num_layers=4,
                           num_heads=4, intermediate_size=512, max_position_embeddings=128)
    BertEncoder(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def write_config(directory, checkpoint, rows, global_batch):
    """A classifier run on the bundled reviews cut to `rows` examples, fixed length 64."""
    source = ROOT / "data" / "sentiment-movie" / "train.jsonl"
    lines = source.read_text(encoding="utf-8").splitlines()[:rows]
    train = Path(directory) / "train.jsonl"
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = Path(directory) / "bench.yaml"
    path.write_text(
        f"run_dir: {Path(directory) / 'run'}\nmodel:\n  checkpoint: {checkpoint}\n"
        f"data:\n  train: {train}\n  max_length: 64\n  bucket_by_length: false\n"
        f"training:\n  epochs: 1\n  batch_size: {global_batch}\n  learning_rate: 1.0e-4\n"
        "  checkpoint_every_steps: 100000\n  distribute: multi_worker_mirrored\n"
        "export:\n  enabled: false\n", encoding="utf-8")
    return path


def run(workers, steps, global_batch, directory, checkpoint, cores):
    from tfft.distribute import launch_local_workers

    directory = Path(directory) / f"workers-{workers}"
    directory.mkdir()
    config = write_config(directory, checkpoint, steps * global_batch, global_batch)
    result = directory / "result.json"
    share = max(1, len(cores) // workers)

    def worker_env(i):
        if workers <= len(cores):
            mine = cores[i * share:(i + 1) * share]
        else:
            mine = [cores[i % len(cores)]]
        return {"TFFT_BENCH_CPUS": ",".join(map(str, mine)), "TF_CPP_MIN_LOG_LEVEL": "2"}

    started = time.perf_counter()
    code = launch_local_workers([sys.executable, __file__, "--worker", str(config), str(result)], workers,
                                log_dir=directory / "logs", worker_env=worker_env)
    if code:
        raise SystemExit(f"bench_multi_worker: {workers} workers failed (exit {code}); logs in {directory / 'logs'}")
    measured = json.loads(result.read_text())
    times = measured["step_times"][WARMUP_STEPS:]
    step = statistics.median(times)
    return {
        "workers": workers,
        "chief_cpus": measured["cpus"],
        "steps_measured": len(times),
        "steps_per_s": 1 / step,
        "examples_per_s": global_batch / step,
        "step_ms": step * 1e3,
        "allreduce_ms": measured["allreduce"] * 1e3,
        "allreduce_share": measured["allreduce"] / step,
        "collective_ops": measured["collectives"],
        "gradient_floats": measured["gradient_floats"],
        "wall_s": time.perf_counter() - started,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=40, help="steps per run (the first 5 are not timed)")
    parser.add_argument("--global-batch", type=int, default=24, help="split across workers; divisible by each count")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(*args.worker)
    for n in args.workers:
        if args.global_batch % n:
            parser.error(f"--global-batch {args.global_batch} does not split over {n} workers")
    cores = sorted(os.sched_getaffinity(0))
    print(f"{len(cores)} cores {cores}, global batch {args.global_batch}, {args.steps} steps per run "
          f"(the first {WARMUP_STEPS} not timed)", flush=True)
    print(f"{'workers':>7}  {'steps/s':>8}  {'ex/s':>7}  {'step ms':>8}  {'all-reduce ms':>13}  {'share':>6}  "
          f"{'collectives':>11}  chief cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="tfft-bench-mw-") as directory:
        checkpoint = Path(directory) / "checkpoint"  # one model for every row
        make_checkpoint(checkpoint)
        for n in args.workers:
            r = run(n, args.steps, args.global_batch, directory, checkpoint, cores)
            print(f"{r['workers']:>7}  {r['steps_per_s']:>8.2f}  {r['examples_per_s']:>7.1f}  {r['step_ms']:>8.1f}  "
                  f"{r['allreduce_ms']:>13.1f}  {r['allreduce_share']:>6.1%}  {r['collective_ops']:>11}  "
                  f"{r['chief_cpus']}", flush=True)
        print(f"all-reduced per step: {r['gradient_floats'] / 1e6:.2f} M gradient floats", flush=True)


if __name__ == "__main__":
    main()
