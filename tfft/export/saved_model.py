"""SavedModel export in TF Serving's layout, taking raw text or token ids.

TF Serving watches `<export_dir>/<version>/`; each export adds a new integer version.
`serving_default` tokenizes raw strings in-graph (tensorflow-text, so a loader must
`import tensorflow_text` first) and `serve_ids` takes the tokenizer's output directly.
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


def _outputs(model, logits):
    probabilities = model.probabilities(logits)
    names = tf.constant(model.labels)
    if model.problem_type == "single_label_classification":
        labels = tf.gather(names, tf.argmax(probabilities, axis=-1))
    elif model.problem_type == "multi_label_classification":
        chosen = tf.where(probabilities >= 0.5, names[None, :], tf.constant(""))
        joined = tf.strings.reduce_join(chosen, axis=-1, separator=",")
        # Drop the separators of unchosen labels (RE2 has no lookahead): collapse runs, trim ends.
        labels = tf.strings.regex_replace(tf.strings.regex_replace(joined, ",+", ","), "^,|,$", "")
    else:
        labels = tf.strings.as_string(probabilities[:, 0])
    return {"labels": labels, "probabilities": probabilities, "logits": tf.cast(logits, tf.float32)}


def export_saved_model(model, export_dir, version=None, max_length=None):
    """Writes `model` as `<export_dir>/<version>/` and returns that path.

    Signatures:
        serving_default(text[, text_pair]) -> labels (string), probabilities, logits
        serve_ids(input_ids, attention_mask, token_type_ids) -> the same outputs

    Args:
        model: a `SequenceClassifier` with its tokenizer attached.
        export_dir: the model's base directory, as TF Serving's `--model_base_path`.
        version: an integer; default one more than the highest version already there.
        max_length: truncation length of the in-graph tokenizer (default: the encoder's
            `max_position_embeddings`, less RoBERTa's padding offset).
    """
    if model.tokenizer is None:
        raise TfftError("the model has no tokenizer attached, so a raw-text signature cannot be built")
    export_dir = Path(export_dir)
    version = next_version(export_dir) if version is None else int(version)
    target = export_dir / str(version)
    if target.exists():
        raise TfftError(f"{target} already exists; choose another version")
    config = model.encoder.config
    if max_length is None:
        offset = config.pad_token_id + 1 if getattr(model.encoder, "position_ids", "") == "padding_offset" else 0
        max_length = config.max_position_embeddings - offset
    tokenizer = model.tokenizer.as_keras_layer(max_length=max_length)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(tokenizer)

    def serve_ids(input_ids, attention_mask, token_type_ids):
        features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return _outputs(model, model(features, training=False))

    text_spec = [tf.TensorSpec([None], tf.string, name="text")]
    if model.text_pair:
        text_spec.append(tf.TensorSpec([None], tf.string, name="text_pair"))

        def serve_text(text, text_pair):
            return _outputs(model, model(tokenizer(text, text_pair), training=False))
    else:

        def serve_text(text):
            return _outputs(model, model(tokenizer(text), training=False))

    archive.add_endpoint("serving_default", serve_text, input_signature=text_spec)
    archive.add_endpoint(
        "serve_ids", serve_ids, input_signature=[tf.TensorSpec([None, None], tf.int32, name=n) for n in ID_NAMES]
    )
    export_dir.mkdir(parents=True, exist_ok=True)
    staging = export_dir / f".tmp-{version}-{uuid.uuid4().hex[:8]}"  # TF Serving ignores non-numeric dirs
    try:
        archive.write_out(str(staging), verbose=False)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
