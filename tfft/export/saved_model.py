"""SavedModel export in TF Serving's layout, taking raw text or token ids.

TF Serving watches `<export_dir>/<version>/`; each export adds a new integer version.
Each task model defines its signatures (`serving_signatures`): `serving_default` tokenizes raw
strings in-graph (tensorflow-text, so a loader must `import tensorflow_text` first) and
`serve_ids` takes the tokenizer's output directly.
"""

import shutil
import uuid
from pathlib import Path

import keras
import tensorflow as tf

from tfft.errors import TfftError

ID_NAMES = ("input_ids", "attention_mask", "token_type_ids")


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


def export_saved_model(model, export_dir, version=None, max_length=None):
    """Writes `model` as `<export_dir>/<version>/` and returns that path.

    The signatures are the model's own (`model.serving_signatures(max_length)`): every task model
    has `serving_default` on raw strings, tokenized in-graph, and `serve_ids` on token ids; see
    each model's docstring for its inputs and outputs.

    Args:
        model: a tfft task model (a `TaskModel` with `serving_signatures`) with its tokenizer.
        export_dir: the model's base directory, as TF Serving's `--model_base_path`.
        version: an integer; default one more than the highest version already there.
        max_length: truncation length of the in-graph tokenizer (default: the encoder's
            `max_position_embeddings`, less RoBERTa's padding offset).
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
    endpoints, resources = model.serving_signatures(max_length)

    archive = keras.export.ExportArchive()
    archive.track(model)
    for resource in resources:
        archive.track(resource)
    for name, (function, signature) in endpoints.items():
        archive.add_endpoint(name, function, input_signature=signature)
    export_dir.mkdir(parents=True, exist_ok=True)
    staging = export_dir / f".tmp-{version}-{uuid.uuid4().hex[:8]}"  # TF Serving ignores non-numeric dirs
    try:
        archive.write_out(str(staging), verbose=False)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
