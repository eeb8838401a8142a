"""Compare tfft's BERT encoder with keras-hub's `BertBackbone` of the same dimensions.

Both models run in one process, interleaved call by call (tfft, keras-hub, keras-hub, tfft,
tfft, ...), so thermal drift and background load hit both alike. For each configuration (precision x
jit_compile) the script measures, after warm-up:

  forward   examples/s of `model(inputs, training=False)`
  train     examples/s of one training step: forward with dropout, masked mean-pool, a
            linear head, MSE against random targets, gradients, AdamW update

Both are wrapped in `tf.function(jit_compile=...)`. It prints the median examples/s over
`--repeats` timed calls per model, their ratio tfft / keras-hub (> 1: tfft is faster), and
`paired`, the median of the per-repeat ratios of back-to-back calls, which shrugs off load
from other processes that comes and goes during the run.

Dimensions default to all-MiniLM-L6-v2. With `--checkpoint DIR` tfft loads real weights
(`Encoder.from_pretrained`) and keras-hub gets random weights of the same dimensions; speed
does not depend on the values. Inputs have a realistic padding pattern: every row has a random
real length between a quarter of `--seq-len` and all of it, and the rest is masked padding.

Without `--precision`/`--jit` the three configurations below run; with either, every
combination of the given values runs. On 2 CPU cores the default run takes 3 to 5 minutes.

Example:
    python tools/bench_encoder.py                                   # fp32+jit, bf16+jit, bf16 no jit
    python tools/bench_encoder.py --precision mixed_bfloat16 --jit off --repeats 7
    python tools/bench_encoder.py --checkpoint path/to/all-MiniLM-L6-v2 --mode train
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from tfft.encoders import BertEncoder, Encoder, EncoderConfig
from tfft.encoders.config import read_hf_config

DEFAULT_CONFIGS = (("float32", True), ("mixed_bfloat16", True), ("mixed_bfloat16", False))
MINILM = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_layers": 6,
    "num_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab-size", type=int, default=MINILM["vocab_size"])
    parser.add_argument("--hidden-size", type=int, default=MINILM["hidden_size"])
    parser.add_argument("--num-layers", type=int, default=MINILM["num_layers"])
    parser.add_argument("--num-heads", type=int, default=MINILM["num_heads"])
    parser.add_argument("--intermediate-size", type=int, default=MINILM["intermediate_size"])
    parser.add_argument("--max-positions", type=int, default=MINILM["max_position_embeddings"])
    parser.add_argument(
        "--checkpoint", type=Path, help="Hugging Face BERT checkpoint directory; overrides the dimension options"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per model and measurement (>= 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (the first one compiles)")
    parser.add_argument("--precision", nargs="+", choices=("float32", "mixed_bfloat16"))
    parser.add_argument("--jit", nargs="+", choices=("on", "off"), help="jit_compile of the tf.functions")
    parser.add_argument("--mode", nargs="+", choices=("forward", "train"), default=["forward", "train"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5 (the result is a median)")
    if args.precision or args.jit:
        args.configs = [
            (p, j == "on") for p in args.precision or ["float32", "mixed_bfloat16"] for j in args.jit or ["on", "off"]
        ]
    else:
        args.configs = list(DEFAULT_CONFIGS)
    return args


def make_inputs(args, vocab_size, rng):
    batch, seq = args.batch_size, args.seq_len
    lengths = rng.integers(max(1, seq // 4), seq + 1, size=batch)
    lengths[0] = seq  # the longest row sets the padded length, as a bucketing loader would
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype("int32")
    ids = rng.integers(min(1000, vocab_size // 2), vocab_size, size=(batch, seq)).astype("int32") * mask
    return {
        "ids": tf.constant(ids),
        "mask": tf.constant(mask),
        "segments": tf.zeros((batch, seq), "int32"),
        "targets": tf.constant(rng.normal(size=(batch, 1)).astype("float32")),
    }


def build_models(args, precision):
    """Returns (tfft encoder, keras-hub backbone) built with the dtype policy `precision`."""
    if args.checkpoint:
        tfft_model = Encoder.from_pretrained(args.checkpoint, lm_head=False, dtype=precision)
    else:
        config = EncoderConfig(
            model_type="bert",
            vocab_size=args.vocab_size,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            num_heads=args.num_heads,
            intermediate_size=args.intermediate_size,
            max_position_embeddings=args.max_positions,
        )
        tfft_model = BertEncoder(config, dtype=precision)
    c = tfft_model.config
    hub_model = keras_hub.models.BertBackbone(
        vocabulary_size=c.vocab_size,
        num_layers=c.num_layers,
        num_heads=c.num_heads,
        hidden_dim=c.hidden_size,
        intermediate_dim=c.intermediate_size,
        max_sequence_length=c.max_position_embeddings,
        dropout=0.1,
        dtype=precision,
    )
    return tfft_model, hub_model


def tfft_call(model):
    return lambda data, training: model(
        {"input_ids": data["ids"], "attention_mask": data["mask"], "token_type_ids": data["segments"]},
        training=training,
    )["sequence_output"]


def hub_call(model):
    return lambda data, training: model(
        {"token_ids": data["ids"], "segment_ids": data["segments"], "padding_mask": data["mask"]},
        training=training,
    )["sequence_output"]


def make_steps(call, model, hidden_size, precision, jit):
    """Returns tf.functions {"forward", "train"}, each giving a tensor to block on."""
    head = keras.layers.Dense(1, dtype=precision, name="head")
    head.build((None, hidden_size))
    variables = model.trainable_variables + head.trainable_variables
    optimizer = keras.optimizers.AdamW(learning_rate=1e-5)
    optimizer.build(variables)

    def forward(data):
        return call(data, training=False)

    def train_step(data):
        with tf.GradientTape() as tape:
            sequence = tf.cast(call(data, training=True), "float32")
            mask = tf.cast(data["mask"], "float32")[:, :, None]
            pooled = tf.reduce_sum(sequence * mask, axis=1) / tf.reduce_sum(mask, axis=1)
            prediction = tf.cast(head(pooled), "float32")
            loss = tf.reduce_mean(tf.square(prediction - data["targets"]))
        gradients = tape.gradient(loss, variables)
        # The pooler gets no gradient from this loss; leave it out as a fine-tuning loop would.
        pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        return loss

    return {
        "forward": tf.function(forward, jit_compile=jit),
        "train": tf.function(train_step, jit_compile=jit),
    }


def timed(fn, data):
    start = time.perf_counter()
    np.asarray(fn(data))  # blocks until the result exists
    return time.perf_counter() - start


def run_config(args, precision, jit, data):
    tfft_model, hub_model = build_models(args, precision)
    expected = keras.DTypePolicy(precision).compute_dtype
    actual = tfft_model.layer_sequence()[0].attention.query.compute_dtype
    if actual != expected:  # the policy must reach the blocks, or this compares unlike things
        raise SystemExit(f"tfft's attention.query computes in {actual}, not {expected}, under {precision}")
    hidden = tfft_model.config.hidden_size
    steps = {
        "tfft": make_steps(tfft_call(tfft_model), tfft_model, hidden, precision, jit),
        "keras-hub": make_steps(hub_call(hub_model), hub_model, hidden, precision, jit),
    }
    rows = []
    for mode in args.mode:
        compile_s = {}
        for name, fns in steps.items():
            compile_s[name] = timed(fns[mode], data)
            for _ in range(args.warmup - 1):
                timed(fns[mode], data)
        times = {name: [] for name in steps}
        order = list(steps)
        for _ in range(args.repeats):
            for name in order:  # interleaved A, B, B, A, A, B, ...: neither always runs first
                times[name].append(timed(steps[name][mode], data))
            order.reverse()
        throughput = {name: args.batch_size / statistics.median(t) for name, t in times.items()}
        spread = {name: (args.batch_size / max(t), args.batch_size / min(t)) for name, t in times.items()}
        paired = statistics.median(h / t for t, h in zip(times["tfft"], times["keras-hub"]))
        rows.append((precision, jit, mode, throughput, spread, paired, compile_s))
        print_row(rows[-1], flush=True)
    return rows


def print_header():
    print(
        f"{'precision':<15} {'jit':<4} {'mode':<8} {'tfft ex/s':>10} {'keras-hub ex/s':>15} {'ratio':>6} {'paired':>6}"
        f"   {'tfft min-max':>13} {'hub min-max':>13}   first call s (tfft/hub)"
    )


def print_row(row, flush=False):
    precision, jit, mode, throughput, spread, paired, compile_s = row
    a, b = throughput["tfft"], throughput["keras-hub"]
    sa, sb = spread["tfft"], spread["keras-hub"]
    print(
        f"{precision:<15} {'on' if jit else 'off':<4} {mode:<8} {a:>10.2f} {b:>15.2f} {a / b:>6.2f} {paired:>6.2f}"
        f"   {f'{sa[0]:.1f}-{sa[1]:.1f}':>13} {f'{sb[0]:.1f}-{sb[1]:.1f}':>13}"
        f"   {compile_s['tfft']:.1f}/{compile_s['keras-hub']:.1f}",
        flush=flush,
    )


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"tensorflow {tf.__version__}, keras {keras.__version__}, keras-hub {keras_hub.__version__}, "
        f"python {sys.version.split()[0]}; {cores} CPU cores usable ({os.cpu_count()} in the machine)"
    )
    vocab = read_hf_config(args.checkpoint)["vocab_size"] if args.checkpoint else args.vocab_size
    print(
        f"model: {args.checkpoint or 'random BERT'}; batch {args.batch_size}, seq {args.seq_len}; "
        f"median of {args.repeats} timed calls after {args.warmup} warm-up; ratio = tfft / keras-hub"
    )
    data = make_inputs(args, vocab, np.random.default_rng(args.seed))
    print(f"real tokens: {int(tf.reduce_sum(data['mask']))} of {args.batch_size * args.seq_len}\n")
    print_header()
    rows = []
    for precision, jit in args.configs:
        rows += run_config(args, precision, jit, data)
        keras.backend.clear_session()
    print("\nsummary")
    print_header()
    for row in rows:
        print_row(row)


if __name__ == "__main__":
    main()
