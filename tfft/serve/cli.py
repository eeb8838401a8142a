"""`tfft serve`: the command line of the KServe predictor (tfft.serve.server).

`add_parser(commands)` adds the subcommand to tfft's argparse subparsers; it imports neither
kserve nor TensorFlow, so `tfft --help` stays fast and works without the serve extra.
"""

import argparse
import os
import re

from tfft.errors import TfftError
from tfft.serve.limits import Limits

TOKEN_ENV = "TFFT_SERVE_TOKEN"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

DESCRIPTION = """\
Serve a tfft export over TF Serving's REST API (KServe V1) and KServe's V2 protocol, with kserve.

EXPORT_OR_RUN_DIR is an export version (export/3/), an export directory (its highest version), a
run directory (its export/<highest>/, else its onnx/), or an ONNX export (a directory with
model.onnx: signatures serve_ids and serving_default, numeric outputs only).
"""

EPILOG = """\
endpoints (NAME: --name; /versions/V is optional):
  POST /v1/models/NAME[/versions/V]:predict   {"instances": [...]} or {"inputs": ...}, "signature_name"
  GET  /v1/models/NAME[/versions/V]           status (TF Serving's model_version_status; ready)
  GET  /v1/models/NAME[/versions/V]/metadata  signature_def map, as TF Serving answers it
  POST /v2/models/NAME/infer                  V2 inference ("parameters": {"signature_name": ...})
  GET  /v2/models/NAME  /v2/health/ready  /v2/health/live  /metrics

errors are JSON {"error": ...}: 400 bad request, 401 token, 404 model/version/route, 413 body or
batch over the limit, 504 timeout. With a token, only /, /v2/health/live and /v2/health/ready answer
without it. No gRPC server.

example:
  tfft serve runs/sentiment --http-port 8501
  curl -d '{"instances": ["A gripping film."]}' localhost:8501/v1/models/sentiment:predict
"""


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value
    return parse


def _limit_help(name):
    """The help of a Limits field, with its default where it has one."""
    field = Limits.__dataclass_fields__[name]
    return field.metadata["help"] + (" (default: %(default)s)" if field.default is not None else "")


def add_parser(commands):
    """Adds `serve` to `commands`, the argparse subparsers of `tfft` (tfft.cli.build_parser)."""
    serve = commands.add_parser("serve", help="serve an export over TF Serving's REST API and KServe V2",
                                description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("path", metavar="EXPORT_OR_RUN_DIR")
    serve.add_argument("--name", help="the model's name in the URLs (default: model_name in the export's "
                                      "tfft_metadata.json, else the export directory's name)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0: "
                                                          "every interface, as in a container)")
    serve.add_argument("--http-port", type=int, default=8080, help="port to listen on (default: %(default)s, "
                                                                  "kserve's; 0: any free port)")
    serve.add_argument("--token", default=None,
                       help=f"bearer token required on every request but the health checks (default: ${TOKEN_ENV}; "
                            "none: no check). Prefer the environment variable: arguments show in `ps`")
    defaults = Limits()
    serve.add_argument("--max-body-bytes", type=_positive(int), default=defaults.max_body_bytes,
                       help=_limit_help("max_body_bytes"))
    serve.add_argument("--max-batch-size", type=_positive(int), default=defaults.max_batch_size,
                       help=_limit_help("max_batch_size"))
    serve.add_argument("--max-text-chars", type=_positive(int), default=defaults.max_text_chars,
                       help=_limit_help("max_text_chars"))
    serve.add_argument("--max-sequence-length", type=_positive(int), default=None,
                       help=_limit_help("max_sequence_length"))
    serve.add_argument("--timeout", type=_positive(float), default=defaults.timeout, help=_limit_help("timeout"))
    serve.add_argument("--threads", type=_positive(int), default=None,
                       help="predictions running at once; further requests wait (default: min(4, cores))")
    serve.add_argument("--intra-op-threads", type=_positive(int), default=None,
                       help="TensorFlow's threads within one op (default: TensorFlow's, one per core)")
    serve.add_argument("--inter-op-threads", type=_positive(int), default=None,
                       help="TensorFlow's threads running independent ops (default: TensorFlow's)")
    serve.add_argument("--onnx", action="store_true",
                       help="serve the ONNX export: EXPORT_OR_RUN_DIR/onnx/ of a run (default: its SavedModel, "
                            "else that), or the directory holding model.onnx")
    serve.add_argument("--int8", action="store_true",
                       help="serve the ONNX export's model.int8.onnx (from tfft export --format onnx --int8); "
                            "implies --onnx")
    serve.add_argument("--no-warmup", dest="warmup", action="store_false",
                       help="skip the export's warmup requests (assets.extra/tf_serving_warmup_requests) at start")
    serve.set_defaults(run=run)
    return serve


def run(args):
    """`tfft serve`: loads the model, prints where it listens and serves until interrupted."""
    if not 0 <= args.http_port <= 65535:
        raise TfftError(f"--http-port {args.http_port}: not a port (0-65535)")
    if args.name is not None and not NAME_PATTERN.fullmatch(args.name):
        raise TfftError(f"--name {args.name!r}: use letters, digits, '.', '_' and '-' (it goes into URLs)")
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    try:
        from tfft.serve import server
    except ImportError as e:
        if (e.name or "").partition(".")[0] not in ("kserve", "fastapi", "starlette", "uvicorn"):
            raise
        raise TfftError(f"tfft serve needs kserve ({e.name} is missing): pip install -e '.[serve]'") from None
    from tfft.serve.backend import default_model_name, load_backend

    sock = server.listen(args.host, args.http_port)  # a busy port fails now, not after loading the model
    backend = load_backend(args.path, onnx=args.onnx, int8=args.int8,
                           intra_op_threads=args.intra_op_threads, inter_op_threads=args.inter_op_threads)
    warmed = backend.warmup() if args.warmup else 0
    name = args.name or default_model_name(backend)
    if not NAME_PATTERN.fullmatch(name):
        raise TfftError(f"the model name {name!r} (from {backend.path}) does not fit in a URL: give --name")
    limits = Limits(max_body_bytes=args.max_body_bytes, max_batch_size=args.max_batch_size,
                    max_text_chars=args.max_text_chars, timeout=args.timeout,
                    max_sequence_length=args.max_sequence_length)

    def announce(url):
        print(f"tfft: serving {name} version {backend.version} ({backend.format} {backend.path}; signatures "
              f"{', '.join(backend.signatures)}{f'; {warmed} warmup requests run' if warmed else ''}"
              f"{'; bearer token required' if token else ''}) at {url}/v1/models/{name}", flush=True)

    try:
        server.serve(backend, name, sock, token=token, limits=limits, threads=args.threads, on_start=announce)
    except KeyboardInterrupt:
        pass
    return 0
