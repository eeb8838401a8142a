"""What an export says about itself: `tfft_metadata.json`, written beside every exported model.

The same record goes into a SavedModel's `assets.extra/` and beside an ONNX file, so a server or
a client can tell what the model is (task, labels, tokenizer, longest input, tfft version)
without importing tfft or reading the graph.
"""

import json

METADATA_FILE = "tfft_metadata.json"
# TF Serving's warmup file in a SavedModel's assets.extra/ (named here, where importing costs no TensorFlow)
WARMUP_FILE = "tf_serving_warmup_requests"


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def export_metadata(model, max_length, task=None, signatures=None) -> dict:
    """The metadata record of an export of `model`.

    Args:
        model: a tfft task model with its tokenizer attached.
        max_length: the truncation length the export's tokenizer uses.
        task: the task's name (`Task.name`), where the caller knows it (a run does).
        signatures: `{name: {"inputs": [...], "outputs": [...]}}` of the exported entry points.
    """
    import tfft

    encoder = model.encoder
    config = encoder.config
    tokenizer = model.tokenizer
    peft = getattr(model, "peft_config", None) or {}
    record = {
        "format_version": 1,
        "tfft_version": tfft.__version__,
        "task": task,
        "model_class": type(model).__name__,
        "labels": list(getattr(model, "labels", None) or []) or None,
        "head": _jsonable(model.head_config()),
        "encoder": {"model_type": config.model_type, "hidden_size": config.hidden_size,
                    "num_layers": config.num_layers, "vocab_size": config.vocab_size},
        "tokenizer": None if tokenizer is None else {
            "kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size, "pad_token_id": tokenizer.pad_token_id},
        "max_length": int(max_length) if max_length is not None else None,
        "peft": {name: getattr(cfg, "method", type(cfg).__name__) for name, cfg in peft.items()} or None,
    }
    if signatures is not None:
        record["signatures"] = signatures
    return record


def write_metadata(record, directory):
    """Writes `record` as `directory/tfft_metadata.json`; returns the path."""
    path = directory / METADATA_FILE
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
