"""What `tfft serve` runs: an exported model behind a small interface, whatever its format.

A backend has `signatures`, `{name: {"inputs": {input: TensorInfo}, "outputs": {...}}}`, and
`predict(signature_name, inputs) -> outputs` on dicts of numpy arrays. The server speaks its
protocols to that interface only, so a SavedModel and (later) an ONNX export answer the same
requests. `find_export` turns what a user points at (an export version, an export directory or
a run directory) into the model directory to load.
"""

import json
import logging
from pathlib import Path
from typing import NamedTuple

from tfft.errors import TfftError
from tfft.export.metadata import METADATA_FILE, WARMUP_FILE

logger = logging.getLogger("tfft")

ONNX_FILE = "model.onnx"


class TensorInfo(NamedTuple):
    """One input or output of a signature: a dtype name as TensorFlow spells it ("string",
    "int32", "float32", ...) and a shape with None for a dimension of any size (None: any rank)."""

    dtype: str
    shape: tuple | None


class ModelInputError(TfftError):
    """Inputs of the right dtype and shape that the model still rejects (a token id outside the
    vocabulary, a sequence longer than the position table); the server answers 400."""


class Backend:
    """A loaded model: `path`, `version` (a string, as TF Serving reports it), `metadata` (the
    export's tfft_metadata.json, or {}), `signatures` and `predict`. `predict` is called from
    several threads at once."""

    format = ""
    path: Path
    version: str
    metadata: dict
    signatures: dict

    def predict(self, signature_name, inputs):
        """{output: numpy array} of `signature_name` on {input: numpy array}; raises ModelInputError
        where the model rejects the values."""
        raise NotImplementedError

    def warmup(self):
        """Runs the export's warmup requests, if it has any; returns how many ran."""
        return 0


def find_export(path, onnx=False):
    """The model directory that `path` names.

    `path` may be an export version (`export/3/`, holding saved_model.pb), an export directory
    (its highest numbered version, as TF Serving picks), a run directory (`run/export/<highest>`,
    else `run/onnx/`) or an ONNX export (a directory holding model.onnx). With `onnx=True` only
    an ONNX export will do: `path` itself or `path/onnx/` (where `tfft export --format onnx` writes).
    """
    path = Path(path)
    if not path.is_dir():
        raise TfftError(f"{path}: no such directory")
    onnx_dirs = [d for d in (path, path / "onnx") if (d / ONNX_FILE).is_file()]
    if onnx:
        if not onnx_dirs:
            raise TfftError(f"{path} holds no ONNX export: expected {ONNX_FILE} there or in {path / 'onnx'} "
                            "(tfft export RUN_DIR --format onnx)")
        return onnx_dirs[0]
    if (path / "saved_model.pb").is_file() or (path / ONNX_FILE).is_file():
        return path
    for base in (path, path / "export"):
        versions = [p for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()] \
            if base.is_dir() else []
        if versions:
            return max(versions, key=lambda p: int(p.name))
    if onnx_dirs:
        return onnx_dirs[0]
    raise TfftError(f"{path} holds no model to serve: expected saved_model.pb (an export version), numbered "
                    f"version directories with saved_model.pb (an export directory, as `tfft export` writes), "
                    f"export/<version>/ or onnx/ (a run directory) or {ONNX_FILE} (an ONNX export)")


def read_metadata(path):
    """The tfft_metadata.json at `path` as a dict; {} where there is none or it cannot be read
    (the metadata only adds defaults: a model name, a sequence length limit)."""
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        logger.warning("ignoring %s: %s", path, e)
        return {}
    return record if isinstance(record, dict) else {}


def default_model_name(backend):
    """The name in the export's metadata, else the export directory's name (the run's name
    where the export sits in `run/export/`)."""
    name = backend.metadata.get("model_name")
    if isinstance(name, str) and name:
        return name
    base = backend.path.parent if backend.path.name.isdigit() else backend.path
    if base.name == "export" and base.parent.name:
        base = base.parent
    return base.resolve().name or "model"


def load_backend(path, onnx=False, int8=False, intra_op_threads=None, inter_op_threads=None):
    """The backend for the model `path` names (see `find_export`): an OnnxBackend for an ONNX
    export (`onnx`: only that; `int8`: its model.int8.onnx), a SavedModelBackend otherwise."""
    model_dir = find_export(path, onnx=onnx or int8)
    if not (model_dir / "saved_model.pb").is_file():
        return OnnxBackend(model_dir, int8=int8, threads=intra_op_threads)
    return SavedModelBackend(model_dir, intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads)


class SavedModelBackend(Backend):
    """A SavedModel version directory, run with TensorFlow (and tensorflow-text for the in-graph
    tokenizer). Signatures whose names start with "__" (TensorFlow's own) are left out.

        >>> backend = SavedModelBackend("runs/sentiment/export/1")
        >>> backend.predict("serving_default", {"text": np.array([b"Great film!"], dtype=object)})
        {'labels': array([b'positive'], dtype=object), 'probabilities': array([[0.1, 0.9]], ...), ...}

    Args:
        path: the version directory (holding saved_model.pb).
        intra_op_threads, inter_op_threads: TensorFlow's thread pools (default: TensorFlow's,
            one thread per core); they apply to the whole process and only before TensorFlow
            first runs anything.
    """

    format = "saved_model"

    def __init__(self, path, intra_op_threads=None, inter_op_threads=None):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the in-graph tokenizer's ops)

        self.path = Path(path)
        try:
            if intra_op_threads:
                tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
            if inter_op_threads:
                tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
        except RuntimeError as e:  # TensorFlow already running in this process
            raise TfftError(f"cannot set TensorFlow's thread pools now: {e}") from None
        try:
            self._loaded = tf.saved_model.load(str(self.path))
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise TfftError(f"cannot load the SavedModel in {self.path}: {e}") from None
        self._functions = {name: function for name, function in self._loaded.signatures.items()
                           if not name.startswith("__")}
        if not self._functions:
            raise TfftError(f"the SavedModel in {self.path} has no serving signatures")
        self.signatures = {name: _describe(function) for name, function in sorted(self._functions.items())}
        self.metadata = read_metadata(self.path / "assets.extra" / METADATA_FILE)
        self.version = self.path.name if self.path.name.isdigit() else str(self.metadata.get("version") or 1)
        self._tf = tf

    def predict(self, signature_name, inputs):
        tf = self._tf
        specs = self.signatures[signature_name]["inputs"]
        tensors = {name: tf.constant(value, dtype=specs[name].dtype) for name, value in inputs.items()}
        try:
            outputs = self._functions[signature_name](**tensors)
        except tf.errors.InvalidArgumentError as e:
            raise ModelInputError(_op_error_message(e)) from None
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def warmup(self):
        """Replays assets.extra/tf_serving_warmup_requests (as TF Serving does before it serves), so
        the first real request of each signature does not pay for TensorFlow's first run."""
        path = self.path / "assets.extra" / WARMUP_FILE
        if not path.is_file():
            return 0
        from tfft.export.saved_model import read_warmup_requests

        requests = read_warmup_requests(path)
        for number, (signature, inputs) in enumerate(requests, start=1):
            signature = signature or "serving_default"
            if signature not in self._functions:
                raise TfftError(f"{path}: warmup request {number} names signature {signature!r}, which the model "
                                f"does not have")
            try:
                self.predict(signature, inputs)
            except ModelInputError as e:
                raise TfftError(f"{path}: warmup request {number} ({signature}) failed: {e}") from None
        return len(requests)


class OnnxBackend(Backend):
    """An ONNX export (tfft.export.onnx: model.onnx, its tokenizer and tfft_metadata.json) run by
    `tfft.export.onnx.OnnxModel` in onnxruntime.

    Signatures: `serve_ids` (the graph's int32 token ids) and `serving_default` on raw strings
    (the export's `text_inputs`, tokenized on the host as OnnxModel does). Their outputs are the
    graph's numeric ones: string outputs such as label names have no ONNX ops and are not exported.

    Args:
        path: the export directory (holding model.onnx).
        int8: run model.int8.onnx instead.
        threads: onnxruntime's intra-op threads (default: one per core).
    """

    format = "onnx"

    def __init__(self, path, int8=False, threads=None):
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise TfftError(f"{path} is an ONNX export; serving it needs onnxruntime: pip install -e '.[onnx]'") \
                from None
        from tfft.export.onnx import OnnxModel

        self.path = Path(path)
        self._model = OnnxModel(self.path, int8=int8, threads=threads)
        self.metadata = self._model.metadata
        self.version = str(self.metadata.get("version") or 1)
        session = self._model.session
        ids = {node.name: _onnx_info(node) for node in session.get_inputs()}
        outputs = {node.name: _onnx_info(node) for node in session.get_outputs()}
        self._text_inputs = list(self.metadata["onnx"].get("text_inputs") or [])[:2]  # OnnxModel takes two
        self.signatures = {"serve_ids": {"inputs": dict(sorted(ids.items())), "outputs": dict(sorted(outputs.items()))}}
        if self._text_inputs:
            self.signatures["serving_default"] = {
                "inputs": {name: TensorInfo("string", (None,)) for name in self._text_inputs},
                "outputs": dict(sorted(outputs.items()))}
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

        self._input_error = InvalidArgument

    def predict(self, signature_name, inputs):
        try:
            if signature_name == "serve_ids":
                return self._model.run(**inputs)
            texts = [[value.decode("utf-8", "replace") for value in inputs[name].tolist()]
                     for name in self._text_inputs]
            return self._model.predict_texts(*texts)
        except self._input_error as e:
            raise ModelInputError(str(e).split("Status Message: ")[-1].strip()) from None


_ONNX_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
                "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool", "tensor(string)": "string"}


def _onnx_info(node):
    """The TensorInfo of an onnxruntime input or output (named dimensions are dynamic)."""
    shape = None if node.shape is None else tuple(d if isinstance(d, int) else None for d in node.shape)
    return TensorInfo(_ONNX_DTYPES.get(node.type, node.type), shape)


def _describe(function):
    """{"inputs": {name: TensorInfo}, "outputs": {...}} of a concrete signature function."""
    import tensorflow as tf

    def info(spec):
        shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
        return TensorInfo(spec.dtype.name, shape)

    args, kwargs = function.structured_input_signature
    inputs = {spec.name: spec for spec in args} | dict(kwargs)
    outputs = function.structured_outputs
    if not isinstance(outputs, dict):
        outputs = {"output_0": outputs}
    return {"inputs": {name: info(spec) for name, spec in sorted(inputs.items())},
            "outputs": {name: info(spec if isinstance(spec, tf.TensorSpec) else tf.TensorSpec.from_tensor(spec))
                        for name, spec in sorted(outputs.items())}}


def _op_error_message(error):
    """The informative lines of a TensorFlow op error, without its graph-execution framing:
    'indices[0,130] = 130 is not in [0, 128)' rather than 'Graph execution error: Detected at...'."""
    lines = [line.strip() for line in error.message.splitlines()]
    useful = [line for line in lines if line and not line.startswith(("Graph execution error", "Detected at node",
                                                                         "<stack traces", "[[", "{{"))]
    return "; ".join(useful) or lines[0]
