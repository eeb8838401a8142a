"""The `tfft` command line.

    tfft inspect CHECKPOINT     architecture, sizes, loading report and tokenizer of a checkpoint
    tfft --version
"""

import argparse
import logging
import os
import sys

import tfft


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


def build_parser():
    parser = argparse.ArgumentParser(prog="tfft", description="Fine-tune transformer encoders with TensorFlow.")
    parser.add_argument("--version", action="version", version=f"tfft {tfft.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    inspect = commands.add_parser("inspect", help="describe a checkpoint and how tfft loads it")
    inspect.add_argument("checkpoint", help="a local checkpoint directory or a Hugging Face Hub id")
    inspect.set_defaults(run=_inspect)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except tfft.TfftError as e:
        print(f"tfft: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
