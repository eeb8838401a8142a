"""ONNX export of any tfft task model, checked against TensorFlow, and `OnnxModel` to run it.

`export_onnx` converts the numeric outputs of the model's `serve_ids` signature (token ids in,
logits and the like out; the string outputs, such as label names, have no ONNX ops and stay in
the SavedModel) and writes:

    <output_dir>/
      model.onnx            fp32; inputs input_ids, attention_mask, token_type_ids (int32 [batch, seq])
      model.int8.onnx       dynamic int8 quantization (see tfft.export.quantize), unless quantize=False
      tokenizer.json ...    the tokenizer's files
      tfft_metadata.json    tfft's export record, with an "onnx" section: opset, inputs and outputs,
                            files and sizes, the measured difference to TensorFlow, optimizer, int8

Exporting needs tensorflow, tf2onnx and onnxruntime (pip install -e '.[onnx]'). Running the
directory with `OnnxModel` needs only onnxruntime, tokenizers and numpy: a serving host does not
install TensorFlow, and this module imports neither TensorFlow nor tf2onnx until it exports.
"""

import dataclasses
import json
import logging
import shutil
import uuid
from pathlib import Path

import numpy as np

from tfft.errors import TfftError
from tfft.export.metadata import METADATA_FILE
from tfft.export.quantize import INSTALL, int8_settings, quantize_onnx

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
OPSETS = range(14, 19)  # what tf2onnx 1.17 tests
# Checked rows: short and long, accents, CJK and emoji, a batch of one and padded batches; pairs
# are checked when the model's raw-text signature takes two texts (a pair classifier, QA).
CHECK_TEXTS = ("A gripping, funny film.", "Dull!",
               "Naïve café owners in Zürich opened a second shop on 5th Avenue, and reviewers called it the best "
               "espresso they had tasted in years.", "电影 🎬 was great!",
               ("Where is the Eiffel Tower?", "The Eiffel Tower is a wrought-iron lattice tower in Paris, France."),
               ("Who built it?", "Gustave Eiffel's company built it for the 1889 World's Fair."),
               ("ok", "fine"))


def _import(module, purpose="ONNX export"):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as err:
        raise TfftError(f"{purpose} needs {module.partition('.')[0]}: {INSTALL}") from err


@dataclasses.dataclass(frozen=True)
class OnnxExport:
    """What `export_onnx` wrote: the directory, its files' sizes in bytes, the largest absolute
    difference of each output to TensorFlow (fp32 and int8) and the metadata record."""

    directory: Path
    sizes: dict
    max_abs_diff: dict
    int8_max_abs_diff: dict
    optimizer: dict
    metadata: dict

    @property
    def model_path(self):
        return self.directory / MODEL_FILE

    @property
    def int8_path(self):
        return self.directory / INT8_FILE if INT8_FILE in self.sizes else None


def unconvertible_ops(model_proto):
    """The ops of an ONNX graph that are not standard ONNX, as sorted strings: a TensorFlow op
    tf2onnx could not convert (it keeps the node under its TF name), a function call it left
    (`PartitionedCall`, `StatefulPartitionedCall`) or an op of another domain. Empty when clean."""
    onnx = _import("onnx")
    found, graphs = set(), [model_proto.graph]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            domain = node.domain or ""
            if (domain not in ("", "ai.onnx") or "PartitionedCall" in node.op_type
                    or not onnx.defs.has(node.op_type, domain)):
                found.add(node.op_type + (f" (domain {domain})" if domain else ""))
            for attribute in node.attribute:  # If / Loop bodies
                graphs.extend([attribute.g] if attribute.HasField("g") else list(attribute.graphs))
    return sorted(found)


class _Errors(logging.Handler):
    """Collects tf2onnx's error lines: it logs "Unsupported ops" and "Failed to convert node", then
    reports success anyway."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def numeric_function(function, signature):
    """A tf.function of `function` on `signature` returning only its numeric (non-string) outputs;
    once traced, its `dropped` lists the string outputs left out."""
    import tensorflow as tf

    @tf.function(input_signature=signature)
    def numeric(*inputs):
        outputs = function(*inputs)
        numeric.dropped = sorted(k for k, v in outputs.items() if v.dtype == tf.string)
        return {k: v for k, v in outputs.items() if v.dtype != tf.string}

    return numeric


def _check_opset(opset):
    if opset not in OPSETS:
        raise TfftError(f"opset {opset} is not supported: tf2onnx 1.17 converts opsets "
                        f"{OPSETS.start}-{OPSETS.stop - 1} (default 17)")


def convert(function, signature, opset=17):
    """The ONNX ModelProto of a tf.function on int32 id tensors; raises TfftError naming the ops
    tf2onnx could not convert.

    The function is frozen here and converted with `tf2onnx.convert.from_graph_def`:
    `from_function` takes every captured tensor for an input (a label-name constant that only a
    dropped string output used fails with "Fetch node GatherV2/params doesn't exist in graph").
    """
    _check_opset(opset)
    tf2onnx = _import("tf2onnx")
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = function.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False, aggressive_inlining=True)
    inputs = [t.name for t in frozen.inputs]
    if len(inputs) != len(signature):
        raise TfftError(f"the serving function captures tensors TensorFlow could not freeze: inputs {inputs}")
    outputs = {key: t.name for key, t in concrete.structured_outputs.items()}
    rename = {**dict(zip(inputs, (spec.name for spec in signature))), **{v: k for k, v in outputs.items()}}
    errors, loggers = _Errors(), [logging.getLogger("tf2onnx"), logging.getLogger("tensorflow")]
    levels = [logger.level for logger in loggers]
    loggers[0].addHandler(errors)
    loggers[1].setLevel(logging.ERROR)  # TF1 freezing's deprecation warnings, from inside tf2onnx
    try:
        proto, _ = tf2onnx.convert.from_graph_def(frozen.graph.as_graph_def(add_shapes=True), name="tfft",
                                                  input_names=inputs, output_names=list(outputs.values()),
                                                  opset=opset, tensors_to_rename=rename)
    finally:
        loggers[0].removeHandler(errors)
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    unconverted = unconvertible_ops(proto)
    failed = [line.splitlines()[0] for line in errors.lines if "Unsupported ops" in line or "Failed to" in line]
    if unconverted or failed:
        raise TfftError(f"tf2onnx cannot convert this model's serve_ids outputs {sorted(outputs)}: "
                        f"ops {', '.join(unconverted) or 'none left'} are not standard ONNX"
                        + (f" ({'; '.join(failed)})" if failed else "")
                        + ". Compute numeric outputs without string or other unsupported TensorFlow ops")
    return proto


def check_batches(model, text_inputs, max_length, texts=None):
    """Tokenized batches to compare the ONNX file with TensorFlow on: a batch of one text, one of
    all single texts (padded) and, when the raw-text signature takes two texts, one of the pairs.
    `texts`: strings and (text, text_pair) tuples (default `CHECK_TEXTS`)."""
    texts = CHECK_TEXTS if texts is None else texts
    singles = [t for t in texts if isinstance(t, str)]
    pairs = [tuple(t) for t in texts if not isinstance(t, str)]
    if len(text_inputs) < 2 and texts is CHECK_TEXTS:
        pairs = []
    batches = [model.tokenizer(rows, max_length=max_length) for rows in (singles[:1], singles) if rows]
    if pairs:
        batches.append(model.tokenizer([a for a, _ in pairs], [b for _, b in pairs], max_length=max_length))
    if not batches:
        raise TfftError("check_texts holds no text to check the ONNX file on")
    return [{k: np.asarray(v, np.int32) for k, v in b.items()} for b in batches]


def max_abs_diff(session, batches, expected):
    """{output: largest |onnxruntime - expected|} over the batches; NaN, or a shape that differs,
    counts as infinitely far."""
    worst = {}
    for batch, want in zip(batches, expected):
        names = list(want)
        for name, got in zip(names, session.run(names, batch)):
            same = got.shape == want[name].shape
            diff = float(np.max(np.abs(got.astype(np.float64) - want[name]), initial=0.0)) if same else np.inf
            worst[name] = max(worst.get(name, 0.0), diff if diff == diff else np.inf)
    return worst


def _session(path):
    ort = _import("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _describe(values):
    """{name: {"dtype", "shape"}} of ONNX graph inputs or outputs; -1 for a dynamic dimension."""
    from onnx.helper import tensor_dtype_to_np_dtype

    return {v.name: {"dtype": tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
                     "shape": [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]}
            for v in values}


def _optimize(source, target, config, batches, expected, atol):
    """onnxruntime's transformer optimizer (attention, LayerNorm and GELU fusions) on `source`,
    saved to `target` only if it stays within `atol` of TensorFlow; returns its record."""
    optimizer = _import("onnxruntime.transformers.optimizer")
    record = {"requested": True, "applied": False, "model_type": "bert"}
    try:
        optimized = optimizer.optimize_model(str(source), model_type="bert", num_heads=config.num_heads,
                                             hidden_size=config.hidden_size)
    except Exception as err:  # noqa: BLE001  (its fusions raise all kinds on graphs they do not expect)
        return {**record, "reason": f"the optimizer failed: {type(err).__name__}: {err}"}
    record["fused_ops"] = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    if not record["fused_ops"]:
        # Its fusions match PyTorch exports; in tf2onnx's graph of Keras' LayerNorm the moments are
        # GlobalAveragePools and rsqrt a Reciprocal of a Sqrt, and attention is Keras' einsums.
        return {**record, "reason": "the optimizer fused nothing in tf2onnx's graph"}
    optimized.save_model_to_file(str(target))
    diff = max_abs_diff(_session(target), batches, expected)
    record["max_abs_diff"] = diff
    if max(diff.values()) > atol:
        target.unlink()
        return {**record, "reason": f"the optimized graph differs from TensorFlow by {max(diff.values()):.3g} > {atol}"}
    return {**record, "applied": True}


def export_onnx(model, output_dir, *, max_length=None, opset=17, optimize=False, quantize=True, check_texts=None,
                task=None, atol=1e-4):
    """Writes `model` as ONNX (and int8 ONNX) with its tokenizer and metadata into `output_dir`.

    The graph is the numeric part of the model's own `serve_ids` signature (any task model's,
    from `model.serving_signatures`), with dynamic batch and sequence dimensions. It is run in
    onnxruntime right away on tokenized texts and must match TensorFlow within `atol` on every
    output; nothing is written otherwise (the directory appears complete or not at all).

    Args:
        model: a tfft task model with its tokenizer; fold PEFT adapters first
            (`model.fold_adapters()`): merged ones cost nothing, the others stay in the graph.
        output_dir: a new (or empty) directory.
        max_length: the longest input, recorded for `OnnxModel`'s truncation (default: the
            encoder's, as `export_saved_model`).
        opset: ONNX opset, 14-18.
        optimize: also run onnxruntime's transformer optimizer; its graph replaces the plain one
            only if it still matches TensorFlow within `atol` (the metadata says why not otherwise).
        quantize: also write `model.int8.onnx` (`tfft.export.quantize.int8_settings()`).
        check_texts: strings and (text, text_pair) tuples to compare on (default `CHECK_TEXTS`).
        task: the task's name, recorded in the metadata.

    Returns an `OnnxExport`.

    Example:
        >>> model.fold_adapters()  # a PEFT model
        >>> export_onnx(model, "exports/sentiment-onnx").max_abs_diff
        {'logits': 4.5e-08, 'probabilities': 2.9e-08}
        >>> OnnxModel("exports/sentiment-onnx", int8=True).predict_texts(["A gripping film."])
    """
    from tfft.export.metadata import export_metadata, write_metadata
    from tfft.export.saved_model import default_max_length

    if getattr(model, "tokenizer", None) is None or not hasattr(model, "serving_signatures"):
        raise TfftError(f"{type(model).__name__} needs a tokenizer and serving_signatures to export")
    output_dir = Path(output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise TfftError(f"{output_dir} already exists and is not an empty directory; choose another")
    _check_opset(opset)
    ort, tf2onnx = _import("onnxruntime"), _import("tf2onnx")
    max_length = default_max_length(model.encoder) if max_length is None else int(max_length)
    endpoints, _ = model.serving_signatures(max_length)
    function, signature = endpoints["serve_ids"]
    numeric = numeric_function(function, signature)
    proto = convert(numeric, signature, opset)
    text_inputs = [spec.name for spec in endpoints["serving_default"][1]] if "serving_default" in endpoints else []
    batches = check_batches(model, text_inputs, max_length, check_texts)
    expected = [{k: np.asarray(v, np.float64) for k, v in numeric(*(batch[s.name] for s in signature)).items()}
                for batch in batches]

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = output_dir.parent / f".{output_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
        _import("onnx").save(proto, str(staging / MODEL_FILE))
        diff = max_abs_diff(_session(staging / MODEL_FILE), batches, expected)
        if max(diff.values()) > atol:
            raise TfftError(f"the ONNX graph's outputs differ from TensorFlow's by up to {diff} (> {atol})")
        optimizer = {"requested": False, "applied": False}
        if optimize:
            optimizer = _optimize(staging / MODEL_FILE, staging / "optimized.onnx", model.encoder.config,
                                  batches, expected, atol)
            if optimizer["applied"]:
                (staging / "optimized.onnx").replace(staging / MODEL_FILE)
        int8, int8_diff = None, {}
        if quantize:
            int8 = quantize_onnx(staging / MODEL_FILE, staging / INT8_FILE, int8_settings())
            int8_diff = max_abs_diff(_session(staging / INT8_FILE), batches, expected)
        model.tokenizer.save_pretrained(staging)
        hf = model.tokenizer.hf_tokenizer
        sizes = {name: (staging / name).stat().st_size for name in (MODEL_FILE, INT8_FILE) if (staging / name).exists()}
        onnx_record = {
            "opset": opset, "tf2onnx_version": tf2onnx.__version__, "onnxruntime_version": ort.__version__,
            "model_file": MODEL_FILE, "int8_file": INT8_FILE if quantize else None, "file_sizes": sizes,
            "inputs": _describe(proto.graph.input), "outputs": _describe(proto.graph.output),
            "string_outputs_left_out": numeric.dropped,
            "text_inputs": text_inputs,
            "tokenizer": {"file": "tokenizer.json", "padding_side": hf.padding_side,
                          "truncation_side": hf.truncation_side, "pad_token": hf.pad_token,
                          "pad_token_id": hf.pad_token_id, "pad_token_type_id": hf.pad_token_type_id},
            "max_abs_diff": diff, "tolerance": atol, "checked_rows": sum(len(b["input_ids"]) for b in batches),
            "optimizer": optimizer,
            "int8": None if int8 is None else {**int8, "max_abs_diff": int8_diff},
        }
        record = {**export_metadata(model, max_length, task=task), "onnx": onnx_record}
        write_metadata(record, staging)
        if output_dir.exists():
            output_dir.rmdir()
        staging.rename(output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return OnnxExport(output_dir, sizes, diff, int8_diff, optimizer, record)


class OnnxModel:
    """An `export_onnx` directory in onnxruntime, tokenizing on the host with HF `tokenizers`
    as tfft's `Tokenizer` does (padding to the longest row, truncating at the export's max length).

    Needs only onnxruntime, tokenizers and numpy.

    Example:
        >>> model = OnnxModel("exports/sentiment-onnx", int8=True, threads=2)
        >>> model.predict_texts(["A gripping, funny film."])["probabilities"]
        array([[0.03, 0.97]], dtype=float32)

    Args:
        directory: what `export_onnx` wrote.
        int8: run `model.int8.onnx` instead of the fp32 file.
        threads: onnxruntime's intra-op threads (default: onnxruntime's, one per core).
        providers: onnxruntime execution providers (default CPU).
    """

    def __init__(self, directory, int8=False, threads=None, providers=None):
        onnxruntime = _import("onnxruntime", "OnnxModel")
        Tokenizer = _import("tokenizers", "OnnxModel").Tokenizer  # noqa: N806

        self.directory = Path(directory)
        path = self.directory / METADATA_FILE
        if not path.is_file():
            raise TfftError(f"{path} does not exist: {self.directory} is not an export_onnx directory")
        self.metadata = json.loads(path.read_text(encoding="utf-8"))
        record = self.metadata.get("onnx")
        if not record:
            raise TfftError(f"{path} has no 'onnx' section: {self.directory} is not an export_onnx directory")
        file = record["int8_file" if int8 else "model_file"]
        if file is None:
            raise TfftError(f"{self.directory} has no int8 model: export it with quantize=True")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(self.directory / file), options,
                                                    providers=providers or ["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.max_length = self.metadata["max_length"]
        settings = record["tokenizer"]
        self.tokenizer = Tokenizer.from_file(str(self.directory / settings["file"]))
        self.tokenizer.no_padding()
        self.tokenizer.enable_padding(direction=settings["padding_side"], pad_id=settings["pad_token_id"] or 0,
                                      pad_type_id=settings["pad_token_type_id"] or 0,
                                      pad_token=settings["pad_token"] or "[PAD]")
        self.tokenizer.enable_truncation(self.max_length, strategy="longest_first",
                                         direction=settings["truncation_side"])

    def tokenize(self, texts, text_pairs=None):
        """{"input_ids", "attention_mask", "token_type_ids"}: int32 [batch, longest row], truncated
        at the export's max length; the ids of `tfft.Tokenizer(texts, text_pairs, max_length)`."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if text_pairs is not None:
            text_pairs = [text_pairs] if isinstance(text_pairs, str) else list(text_pairs)
            if len(text_pairs) != len(texts):
                raise TfftError(f"got {len(texts)} texts but {len(text_pairs)} text_pairs")
        rows = self.tokenizer.encode_batch(texts if text_pairs is None else list(zip(texts, text_pairs)))

        def table(field):
            return np.asarray([getattr(row, field) for row in rows], np.int32).reshape(len(texts), -1)

        return {"input_ids": table("ids"), "attention_mask": table("attention_mask"),
                "token_type_ids": table("type_ids")}

    def run(self, input_ids, attention_mask, token_type_ids):
        """The model's outputs ({name: numpy array}) for int32 [batch, seq] ids."""
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        values = self.session.run(self.output_names, {k: np.asarray(feeds[k], np.int32) for k in self.input_names})
        return dict(zip(self.output_names, values))

    def predict_texts(self, texts, text_pairs=None):
        """Tokenizes one batch of texts (and second segments: the pair of a pair classifier, the
        context of a question answerer, in the order its `text_inputs` metadata lists) and runs it."""
        return self.run(**self.tokenize(texts, text_pairs))
