"""The `tfft` command line.

    tfft train CONFIG [--set key=value ...]    fine-tune, evaluate, save and export a run
        [--local-workers N | --cluster H:P,... --worker-index I]   ... on several workers
    tfft evaluate RUN_DIR DATA_FILE            metrics of a run's model on a labelled file
    tfft predict RUN_DIR [INPUT ...]           predictions (arguments, --file, or stdin; text or JSON)
    tfft export RUN_DIR [--format onnx]        SavedModel for TF Serving, or ONNX (+ --int8)
    tfft serve EXPORT_OR_RUN_DIR               a KServe predictor speaking TF Serving's REST API
    tfft inspect CHECKPOINT                    architecture, loading report and tokenizer
"""

import argparse
import contextlib
import json
import logging
import os
import sys

import tfft
from tfft.serve.cli import add_parser as add_serve_parser


def _inspect(args):
    from tfft.encoders import Encoder

    logging.getLogger("tfft").setLevel(logging.ERROR)  # the report is printed below instead
    encoder = Encoder.from_pretrained(args.checkpoint)
    config = encoder.config
    print(f"{type(encoder).__name__} ({config.model_type}) from {encoder.loading_report.checkpoint}")
    print(
        f"  hidden {config.hidden_size}, layers {config.num_layers}, heads {config.num_heads}, "
        f"vocab {config.vocab_size}, parameters {encoder.count_params():,}"
    )
    print(f"  pooler: {'yes' if encoder.pooler is not None else 'no'}; masked-LM head: "
          f"{'yes' if encoder.lm_head is not None else 'no'}")
    for line in str(encoder.loading_report).splitlines()[1:]:
        print(line)
    try:
        tokenizer = tfft.Tokenizer.from_pretrained(args.checkpoint)
    except tfft.TokenizerError as e:
        print(f"  tokenizer: none usable ({e})")
    else:
        print(f"  tokenizer: {tokenizer.kind}, vocab {tokenizer.vocab_size}")
    return 0


def _verbosity(args):
    """A live progress bar on a terminal (1); into a file or pipe, where a live bar is thousands of
    redrawn lines, a line every `training.log_every_steps` steps and per epoch (2); nothing with --quiet."""
    if args.quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


_MULTI_WORKER = "training.distribute=multi_worker_mirrored"


def _train(args):
    from tfft.config import load_config
    from tfft.run import train

    if args.local_workers is not None:
        if args.cluster or args.worker_index is not None:
            raise tfft.TfftError("--local-workers starts its own cluster; it does not go with --cluster/--worker-index")
        if args.local_workers < 1:
            raise tfft.TfftError(f"--local-workers must be at least 1, got {args.local_workers}")
        from tfft.distribute import launch_local_workers

        load_config(args.config, [*args.set, _MULTI_WORKER])  # a config mistake fails once, here
        sets = [arg for value in [*args.set, _MULTI_WORKER] for arg in ("--set", value)]
        command = [sys.executable, "-m", "tfft.cli", "train", args.config, *sets, *(["--quiet"] if args.quiet else [])]
        return launch_local_workers(command, args.local_workers)
    overrides = list(args.set)
    if args.cluster or args.worker_index is not None:
        if not args.cluster or args.worker_index is None:
            raise tfft.TfftError("--cluster and --worker-index go together: the cluster's HOST:PORT list and which of "
                                 "them this worker is")
        from tfft.distribute import tf_config

        os.environ["TF_CONFIG"] = tf_config(args.cluster.split(","), args.worker_index)
        overrides.append(_MULTI_WORKER)
    train(load_config(args.config, overrides), verbose=_verbosity(args))
    return 0


def _evaluate(args):
    from tfft.run import evaluate, load_run_task

    metrics = evaluate(args.run_dir, args.data, verbose=_verbosity(args))
    print(load_run_task(args.run_dir).format_report(metrics))
    return 0


def _read_inputs(args):
    """(inputs, where each came from): arguments, the lines of --file, or the lines of stdin."""
    if args.inputs:
        return args.inputs, [f"argument {i + 1}" for i in range(len(args.inputs))]
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as f:
                lines = list(enumerate(f, start=1))
        except OSError as e:
            raise tfft.TfftError(f"cannot read {args.file}: {e.strerror}") from None
        source = args.file
    else:
        lines, source = list(enumerate(sys.stdin, start=1)), "stdin"
    lines = [(number, line.rstrip("\n")) for number, line in lines if line.strip()]
    return [line for _, line in lines], [f"{source}, line {number}" for number, _ in lines]


def _predict(args):
    from tfft.run import predict

    inputs, locations = _read_inputs(args)
    if not inputs:
        raise tfft.TfftError("nothing to predict: give inputs as arguments, with --file, or on stdin")
    results = predict(args.run_dir, inputs, batch_size=args.batch_size, locations=locations,
                      progress=not args.quiet and len(inputs) > args.batch_size)
    for record, result in results:
        print(json.dumps({**record, **result}, ensure_ascii=False), flush=True)
    return 0


def _export(args):
    from tfft.run import export

    if args.format == "onnx" and args.version is not None:
        raise tfft.TfftError("--version applies to SavedModel exports; an ONNX export is a directory (--export-dir)")
    if args.optimize and args.format != "onnx":
        raise tfft.TfftError("--optimize applies to --format onnx")
    path = export(args.run_dir, args.export_dir, args.version, format=args.format, int8=args.int8,
                  optimize=args.optimize)
    if args.format == "onnx":
        from tfft.export.metadata import METADATA_FILE

        record = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))["onnx"]
        sizes = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in record["file_sizes"].items())
        diff = max(record["max_abs_diff"].values())
        print(f"ONNX (opset {record['opset']}): {sizes}; max |ONNX - TensorFlow| {diff:.2e} on "
              f"{record['checked_rows']} rows", file=sys.stderr)
        if record.get("int8"):
            print(f"int8: max |int8 - TensorFlow| {max(record['int8']['max_abs_diff'].values()):.2e}; "
                  f"reduce_range {record['int8']['reduce_range']} ({record['int8']['reduce_range_reason']})",
                  file=sys.stderr)
    print(path)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="tfft", description="Fine-tune transformer encoders with TensorFlow.")
    parser.add_argument("--version", action="version", version=f"tfft {tfft.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser("train", help="fine-tune from a YAML config")
    train.add_argument("config", help="a YAML run config (see configs/)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set training.epochs=1 (repeatable)")
    train.add_argument("--quiet", action="store_true",
                       help="no progress output (default: a progress bar on a terminal, a line per epoch otherwise)")
    train.add_argument("--local-workers", type=int, metavar="N",
                       help="run N workers of one multi-worker run on this machine (127.0.0.1, free ports); the "
                            "chief's output shows here, the others' go to log files")
    train.add_argument("--cluster", metavar="HOST:PORT,...",
                       help="this run's workers, worker 0 the chief (instead of TF_CONFIG); with --worker-index")
    train.add_argument("--worker-index", type=int, metavar="I", help="which worker of --cluster this process is")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="metrics of a trained run on a labelled file")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("data", help="a labelled file in the run's format")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser("predict", help="predict; prints one JSON line per input")
    predict.add_argument("run_dir")
    predict.add_argument("inputs", nargs="*", metavar="INPUT",
                         help="plain text, or a JSON object with the task's fields, e.g. "
                              '\'{"question": ..., "context": ...}\' (default: --file, else one per line on stdin)')
    predict.add_argument("--file", help="a file with one input per line")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("--quiet", action="store_true", help="no progress bar (it goes to stderr)")
    predict.set_defaults(run=_predict)

    export = commands.add_parser("export", help="write a SavedModel for TF Serving, or an ONNX file")
    export.add_argument("run_dir")
    export.add_argument("--format", choices=("saved_model", "onnx"), default="saved_model",
                        help="saved_model (TF Serving's layout, raw-text signatures) or onnx (token ids in; "
                             "tokenizer files beside it; needs pip install -e '.[onnx]')")
    export.add_argument("--export-dir", help="default RUN_DIR/export (SavedModel) or RUN_DIR/onnx (ONNX)")
    export.add_argument("--version", type=int, help="SavedModel version; default: the next free one")
    export.add_argument("--int8", action="store_true",
                        help="ONNX: also write model.int8.onnx (dynamic int8); SavedModel: Keras int8 weights")
    export.add_argument("--optimize", action="store_true",
                        help="ONNX: apply onnxruntime's transformer optimizer where it stays exact")
    export.set_defaults(run=_export)

    add_serve_parser(commands)

    inspect = commands.add_parser("inspect", help="describe a checkpoint and how tfft loads it")
    inspect.add_argument("checkpoint", help="a local checkpoint directory or a Hugging Face Hub id")
    inspect.set_defaults(run=_inspect)
    return parser


@contextlib.contextmanager
def _log_to_stderr():
    """Shows the library's log lines (rows skipped, resuming at step N, interrupted) as `tfft: ...`.

    Without a handler Python prints only warnings, so a resumed run would not say where it resumed.
    """
    logger = logging.getLogger("tfft")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("tfft: %(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # once, even where the root logger has a handler too
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with _log_to_stderr():
            return args.run(args)
    except tfft.TfftError as e:
        print(f"tfft: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
