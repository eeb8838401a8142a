"""The SavedModel signatures of `TokenClassifier`: raw text in, tags and entity spans out, in the graph.

Entities are decoded from the first subword of each word with seqeval's default chunking (the
same rule as `schemes.extract_entities(mode="default")`): a word with a non-O tag starts an
entity if its tag is B-/S-, if the previous word is O or ended an entity (E-/S-), or if the
previous word's type differs; otherwise it continues the previous word's entity.
"""

import numpy as np
import tensorflow as tf

from tfft.export.saved_model import ids_signature
from tfft.tasks.token_classification.schemes import parse_tag

_PREFIX_CODES = {"O": 0, "B": 1, "I": 2, "E": 3, "S": 4}


def _tag_tables(labels):
    """Per label id: prefix code (O B I E S), entity type index (-1 for O); and the type names."""
    types, prefixes, type_ids = [], [], []
    for label in labels:
        prefix, entity_type = parse_tag(label)
        prefixes.append(_PREFIX_CODES[prefix])
        if entity_type is None:
            type_ids.append(-1)
            continue
        if entity_type not in types:
            types.append(entity_type)
        type_ids.append(types.index(entity_type))
    return np.asarray(prefixes, np.int32), np.asarray(type_ids, np.int32), types or [""]


def _shift_right(values, fill):
    """values[:, i-1] at column i, `fill` at column 0."""
    return tf.concat([tf.fill([tf.shape(values)[0], 1], tf.cast(fill, values.dtype)), values[:, :-1]], axis=1)


def _shift_left(values, fill):
    return tf.concat([values[:, 1:], tf.fill([tf.shape(values)[0], 1], tf.cast(fill, values.dtype))], axis=1)


def decode_entities(text, tag_ids, probabilities, word_ids, token_starts, token_ends, labels):
    """Entity spans of a batch, in TF ops.

    Args:
        text: tf.string [batch], the raw texts.
        tag_ids, probabilities: [batch, seq] predicted tag id and its probability per token.
        word_ids, token_starts, token_ends: the tokenizer's [batch, seq] word index (-1 for special
            and padding tokens) and character offsets of each token.
        labels: the tag names in id order.

    Returns a dict of [batch, max entities] tensors, padded: entity_labels, entity_texts (string),
    entity_starts, entity_ends (int32 character offsets), entity_scores (mean word probability),
    and num_entities [batch].
    """
    prefix_table, type_table, type_names = _tag_tables(labels)
    real = word_ids >= 0
    first = real & tf.not_equal(word_ids, _shift_right(word_ids, -1))
    last = real & tf.not_equal(word_ids, _shift_left(word_ids, -1))
    # One value per word (its first subword's tag; its span from its first to its last subword).
    word_tags = tf.ragged.boolean_mask(tag_ids, first)
    word_probs = tf.ragged.boolean_mask(probabilities, first)
    word_starts = tf.ragged.boolean_mask(token_starts, first).flat_values
    word_ends = tf.ragged.boolean_mask(token_ends, last).flat_values
    # The previous word of each word, in the flat values of the ragged [batch, (words)]: a row's
    # first word follows an O.
    flat_tags = word_tags.flat_values
    position = tf.range(tf.shape(flat_tags, out_type=tf.int64)[0])
    row_start = tf.equal(position, tf.gather(word_tags.row_starts(), word_tags.value_rowids()))
    prefix = tf.gather(prefix_table, flat_tags)
    kind = tf.gather(type_table, flat_tags)
    prev_prefix = tf.where(row_start, 0, tf.concat([[0], prefix[:-1]], axis=0))
    prev_kind = tf.where(row_start, -1, tf.concat([[-1], kind[:-1]], axis=0))
    inside = prefix != 0
    starts = inside & ((prefix == 1) | (prefix == 4) | (prev_prefix == 0) | (prev_prefix == 3)
                       | (prev_prefix == 4) | tf.not_equal(prev_kind, kind))
    entity = tf.cumsum(tf.cast(starts, tf.int32)) - 1  # every inside word belongs to the last start
    segment = tf.boolean_mask(entity, inside)
    count = tf.reduce_sum(tf.cast(starts, tf.int32))
    begin = tf.math.unsorted_segment_min(tf.boolean_mask(word_starts, inside), segment, count)
    end = tf.math.unsorted_segment_max(tf.boolean_mask(word_ends, inside), segment, count)
    score = tf.math.unsorted_segment_mean(tf.boolean_mask(word_probs.flat_values, inside), segment, count)
    rows = tf.boolean_mask(word_tags.value_rowids(), starts)
    entity_kind = tf.boolean_mask(kind, starts)
    texts = tf.strings.substr(tf.gather(text, rows), begin, end - begin, unit="UTF8_CHAR")
    batch = tf.shape(text, out_type=tf.int64)[0]

    def per_row(values, default):
        return tf.RaggedTensor.from_value_rowids(values, rows, nrows=batch).to_tensor(default_value=default)

    return {
        "entity_labels": per_row(tf.gather(tf.constant(type_names), tf.maximum(entity_kind, 0)), ""),
        "entity_texts": per_row(texts, ""),
        "entity_starts": per_row(begin, -1),
        "entity_ends": per_row(end, -1),
        "entity_scores": per_row(score, 0.0),
        "num_entities": tf.cast(tf.math.bincount(tf.cast(rows, tf.int32), minlength=tf.cast(batch, tf.int32),
                                                 maxlength=tf.cast(batch, tf.int32)), tf.int32),
    }


def serving_signatures(model, max_length):
    """(endpoints, resources to track) for `tfft.export_saved_model`; see `TokenClassifier.serving_signatures`."""
    tokenizer = model.tokenizer.as_keras_layer(max_length=max_length)
    names = tf.constant(model.labels)

    def tag_outputs(features):
        logits = tf.cast(model(features, training=False), tf.float32)
        probabilities = tf.nn.softmax(logits, axis=-1)
        tag_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return logits, tag_ids, tf.reduce_max(probabilities, axis=-1)

    def serve_text(text):
        tokens = tokenizer(text, return_offsets=True)
        features = {k: tokens[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        _, tag_ids, probabilities = tag_outputs(features)
        outputs = decode_entities(text, tag_ids, probabilities, tokens["word_ids"], tokens["offset_starts"],
                                  tokens["offset_ends"], model.labels)
        outputs.update(tags=tf.gather(names, tag_ids), word_ids=tokens["word_ids"],
                       token_starts=tokens["offset_starts"], token_ends=tokens["offset_ends"])
        return outputs

    def serve_ids(input_ids, attention_mask, token_type_ids):
        features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        logits, tag_ids, _ = tag_outputs(features)
        return {"logits": logits, "tags": tf.gather(names, tag_ids)}

    endpoints = {
        "serving_default": (serve_text, [tf.TensorSpec([None], tf.string, name="text")]),
        "serve_ids": (serve_ids, ids_signature()),
    }
    return endpoints, [tokenizer]
