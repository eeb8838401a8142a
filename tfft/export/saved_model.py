"""SavedModel export in TF Serving's layout, taking raw text, tf.Examples or token ids.

TF Serving watches `<export_dir>/<version>/`; each export adds a new integer version and never
overwrites one. Each task model defines its signatures (`serving_signatures`): `serving_default`
tokenizes raw strings in-graph (tensorflow-text, so a loader must `import tensorflow_text` first)
and `serve_ids` takes the tokenizer's output directly; the export adds `serve_examples`, the raw
text signature on serialized `tf.Example`s (one bytes feature per text input).

A version directory is what stock TF Serving loads, and a little more in `assets.extra/`:

    <export_dir>/
      models.config              TF Serving's --model_config_file for this model
      batching_parameters.txt    TF Serving's --batching_parameters_file (see `batching_parameters`)
      <version>/
        saved_model.pb  variables/  assets/
        assets.extra/
          tf_serving_warmup_requests   PredictionLog records TF Serving replays before serving
          tfft_metadata.json           task, labels, tokenizer, max length, signatures, tfft version
"""

import json
import shutil
import uuid
from pathlib import Path

import keras
import tensorflow as tf

from tfft.errors import TfftError
from tfft.export.metadata import METADATA_FILE, WARMUP_FILE, export_metadata, write_metadata

ID_NAMES = ("input_ids", "attention_mask", "token_type_ids")
MODEL_CONFIG_FILE = "models.config"
BATCHING_FILE = "batching_parameters.txt"
# Texts of the warmup requests: short and long, accents, CJK and emoji, so every code path of the
# in-graph tokenizer runs once before the first real request.
WARMUP_TEXTS = ("A short warmup sentence.", "Naïve café owners in Zürich opened a second shop on 5th Avenue, "
                "and reviewers called it the best espresso they had tasted in years.",
                "电影 🎬 was great!", "no")


def next_version(export_dir):
    versions = [int(p.name) for p in Path(export_dir).glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def default_max_length(encoder):
    """The longest input the encoder's position table takes: less RoBERTa's padding offset, and
    less the virtual tokens of a running prefix or prompt adapter, which take positions first."""
    config = encoder.config
    offset = config.pad_token_id + 1 if getattr(encoder, "position_ids", "") == "padding_offset" else 0
    virtual = encoder.virtual_tokens.running() if getattr(encoder, "virtual_tokens", None) is not None else None
    return config.max_position_embeddings - offset - (virtual.num_virtual_tokens if virtual is not None else 0)


def ids_signature():
    """The input signature of `serve_ids`: int32 [batch, seq] ids, attention mask and token types."""
    return [tf.TensorSpec([None, None], tf.int32, name=n) for n in ID_NAMES]


def examples_endpoint(serve_text, text_spec):
    """`serve_examples`: the raw-text signature on serialized tf.Examples, each with one bytes
    feature per text input of `serve_text` (named as its inputs: "text", "question", ...)."""
    names = [spec.name for spec in text_spec]
    features = {name: tf.io.FixedLenFeature([], tf.string) for name in names}

    def serve_examples(examples):
        parsed = tf.io.parse_example(examples, features)
        return serve_text(*(parsed[name] for name in names))

    return serve_examples, [tf.TensorSpec([None], tf.string, name="examples")]


def _signature_specs(functions):
    """{signature: {"inputs": {name: {dtype, shape}}, "outputs": {...}}} of traced endpoints."""
    def describe(spec):
        return {"dtype": spec.dtype.name, "shape": [-1 if d is None else d for d in spec.shape.as_list()]}

    specs = {}
    for name, function in functions.items():
        concrete = function.get_concrete_function()
        specs[name] = {"inputs": {spec.name: describe(spec) for spec in concrete.structured_input_signature[0]},
                       "outputs": {key: describe(tf.TensorSpec.from_tensor(t))
                                   for key, t in concrete.structured_outputs.items()}}
    return specs


def warmup_inputs(model, signatures, max_length):
    """{signature: [inputs, ...]} for the warmup file: a one-row and a four-row request per signature
    (numpy arrays; the raw-text signature's string inputs also make the tf.Examples and the ids)."""
    import numpy as np

    text_inputs = list(signatures["serving_default"]["inputs"])
    requests = {}
    for rows in (WARMUP_TEXTS[:1], list(WARMUP_TEXTS)):
        texts = {field: list(rows) for field in text_inputs}
        examples = [tf.train.Example(features=tf.train.Features(feature={
            field: tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()])) for field in text_inputs}))
            .SerializeToString() for text in rows]
        ids = dict(model.tokenizer(*texts.values(), max_length=max_length))
        for name, spec in signatures.items():
            if set(spec["inputs"]) == set(text_inputs):
                inputs = {field: np.array(values, dtype=object) for field, values in texts.items()}
            elif set(spec["inputs"]) == {"examples"}:
                inputs = {"examples": np.array(examples, dtype=object)}
            elif set(spec["inputs"]) == set(ID_NAMES):
                inputs = ids
            else:
                continue  # a task's own signature with other inputs: no warmup for it
            requests.setdefault(name, []).append(inputs)
    return requests


def write_warmup_requests(path, model_name, requests):
    """TF Serving's `assets.extra/tf_serving_warmup_requests`: one PredictionLog per request."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, batches in requests.items():
            for inputs in batches:
                request = predict_pb2.PredictRequest(
                    model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
                for key, value in inputs.items():
                    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
                log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
                writer.write(log.SerializeToString())


def read_warmup_requests(path):
    """[(signature name, {input: numpy array})] of a warmup file, in its order."""
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        requests.append((request.model_spec.signature_name,
                         {key: tf.make_ndarray(value) for key, value in request.inputs.items()}))
    return requests


def model_config(model_name, base_path):
    """TF Serving's model config (text protobuf, `--model_config_file`): this model, its latest version."""
    return (f"# TF Serving: tensorflow_model_server --model_config_file=THIS_FILE (base_path as mounted in the server)\n"
            f"model_config_list {{\n  config {{\n    name: \"{model_name}\"\n    base_path: \"{base_path}\"\n"
            f"    model_platform: \"tensorflow\"\n    model_version_policy {{ latest {{ num_versions: 1 }} }}\n  }}\n}}\n")


def batching_parameters(max_batch_size=32, batch_timeout_micros=2000, num_batch_threads=2):
    """TF Serving's batching parameters (text protobuf, `--enable_batching --batching_parameters_file`).

    TF Serving batches every signature of a model, and with `pad_variable_length_inputs` it pads
    each tensor with its first element: a padded `attention_mask` would be 1, and the padding
    would be attended. So padding stays off: the raw-text and tf.Example signatures take [batch]
    strings and batch exactly (nothing to pad), while `serve_ids` requests are merged only with
    requests of the same sequence length (TF Serving refuses a batch of mixed lengths), so id
    clients behind a batching server pad to one length, e.g. the export's max length.
    """
    return ("# TF Serving: tensorflow_model_server --enable_batching --batching_parameters_file=THIS_FILE\n"
            "# Padding stays off: TF Serving pads with each tensor's first element, which would set a padded\n"
            "# attention_mask to 1. Raw-text (serving_default) and tf.Example (serve_examples) requests batch\n"
            "# exactly; serve_ids requests batch only with requests of the same length.\n"
            f"max_batch_size {{ value: {max_batch_size} }}\n"
            f"batch_timeout_micros {{ value: {batch_timeout_micros} }}\n"
            f"num_batch_threads {{ value: {num_batch_threads} }}\n"
            "max_enqueued_batches { value: 100 }\n"
            "pad_variable_length_inputs: false\n")


def _write_atomic(path, text):
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def default_model_name(export_dir):
    """A run's `<run>/export` is served under the run's name; another directory under its own."""
    export_dir = Path(export_dir).resolve()
    return export_dir.parent.name if export_dir.name == "export" else export_dir.name


def export_saved_model(model, export_dir, version=None, max_length=None, task=None, model_name=None):
    """Writes `model` as `<export_dir>/<version>/` and returns that path.

    The signatures are the model's own (`model.serving_signatures(max_length)`): every task model
    has `serving_default` on raw strings, tokenized in-graph, and `serve_ids` on token ids (see
    each model's docstring for their inputs and outputs); the export adds `serve_examples` on
    serialized tf.Examples. The variables hold the model's weights once (no optimizer state).

    Args:
        model: a tfft task model (a `TaskModel` with `serving_signatures`) with its tokenizer.
        export_dir: the model's base directory, as TF Serving's `--model_base_path`.
        version: an integer; default one more than the highest version already there.
        max_length: truncation length of the in-graph tokenizer (default: the encoder's
            `max_position_embeddings`, less RoBERTa's padding offset).
        task: the task's name, recorded in the metadata.
        model_name: the name clients use in TF Serving requests (`/v1/models/NAME`); default
            the run's name for `<run>/export`, else the directory's name.
    """
    if getattr(model, "tokenizer", None) is None:
        raise TfftError("the model has no tokenizer attached, so a raw-text signature cannot be built")
    if not hasattr(model, "serving_signatures"):
        raise TfftError(f"{type(model).__name__} defines no serving_signatures; it cannot be exported")
    export_dir = Path(export_dir)
    version = next_version(export_dir) if version is None else int(version)
    target = export_dir / str(version)
    if target.exists():
        raise TfftError(f"{target} already exists; choose another version")
    if max_length is None:
        max_length = default_max_length(model.encoder)
    model_name = model_name or default_model_name(export_dir)
    endpoints, resources = model.serving_signatures(max_length)
    if "serving_default" in endpoints and "serve_examples" not in endpoints:
        endpoints["serve_examples"] = examples_endpoint(*endpoints["serving_default"])

    # The endpoints track the variables they use. Tracking the model as well would store every
    # weight twice (Keras' variables and the endpoints' copies); the tokenizer's tables are tracked.
    archive = keras.export.ExportArchive()
    for resource in resources:
        archive.track(resource)
    signatures = _signature_specs({name: archive.add_endpoint(name, function, input_signature=signature)
                                   for name, (function, signature) in endpoints.items()})
    export_dir.mkdir(parents=True, exist_ok=True)
    staging = export_dir / f".tmp-{version}-{uuid.uuid4().hex[:8]}"  # TF Serving ignores non-numeric dirs
    try:
        archive.write_out(str(staging), verbose=False)
        extra = staging / "assets.extra"
        extra.mkdir()
        write_metadata({**export_metadata(model, max_length, task=task, signatures=signatures),
                        "model_name": model_name, "version": version}, extra)
        write_warmup_requests(extra / WARMUP_FILE, model_name, warmup_inputs(model, signatures, max_length))
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_atomic(export_dir / MODEL_CONFIG_FILE, model_config(model_name, f"/models/{model_name}"))
    _write_atomic(export_dir / BATCHING_FILE, batching_parameters())
    return target


def read_metadata(version_dir):
    """The `tfft_metadata.json` of an exported version (None for an export without one)."""
    path = Path(version_dir) / "assets.extra" / METADATA_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
