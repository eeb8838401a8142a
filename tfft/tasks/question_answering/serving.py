"""The SavedModel signatures of `QuestionAnswerer`: a raw question and context in, the answer span out, in the graph.

The span is chosen as `decode_answers` chooses it in one window: the `n_best` highest start and
end tokens are paired, a pair qualifies when both are context tokens, start <= end < start +
max_answer_length and its characters are not empty, and the best pair by start + end logit wins.
"""

import tensorflow as tf

from tfft.export.saved_model import ids_signature


def best_spans(start_logits, end_logits, is_context, offset_starts, offset_ends, attention_mask, *,
               n_best, max_answer_length):
    """The best answer span of each row, in TF ops.

    Args:
        start_logits, end_logits: float32 [batch, seq].
        is_context: bool [batch, seq], True at the context's tokens.
        offset_starts, offset_ends: int32 [batch, seq] character offsets of each token in the context.
        attention_mask: [batch, seq], 0 at padding (which never ranks among the n_best).

    Returns (found bool [batch], start token, end token int32 [batch], score float32 [batch]);
    where nothing qualifies, found is False and score is -inf.
    """
    seq = tf.shape(start_logits)[1]
    k = tf.minimum(n_best, seq)
    real = tf.cast(attention_mask, tf.bool)
    neg_inf = tf.constant(-float("inf"), tf.float32)

    def top(logits):
        _, indices = tf.math.top_k(tf.where(real, logits, neg_inf), k=k)
        hits = tf.reduce_any(tf.equal(indices[:, :, None], tf.range(seq)[None, None, :]), axis=1)
        return hits & is_context

    starts, ends = top(start_logits), top(end_logits)
    length = tf.range(seq)[None, :] - tf.range(seq)[:, None]  # [start, end]: end - start
    band = (length >= 0) & (length < max_answer_length)
    nonempty = offset_ends[:, None, :] > offset_starts[:, :, None]
    valid = starts[:, :, None] & ends[:, None, :] & band[None] & nonempty
    scores = tf.where(valid, start_logits[:, :, None] + end_logits[:, None, :], neg_inf)
    flat = tf.reshape(scores, [tf.shape(scores)[0], -1])
    best = tf.argmax(flat, axis=-1, output_type=tf.int32)
    score = tf.reduce_max(flat, axis=-1)
    return tf.reduce_any(valid, axis=[1, 2]), best // seq, best % seq, score


def serving_signatures(model, max_length):
    """(endpoints, resources to track) for `tfft.export_saved_model`; see `QuestionAnswerer.serving_signatures`."""
    tokenizer = model.tokenizer.as_keras_layer(max_length=max_length)
    context_segment = 1 if model.question_first else 0

    def logits(features):
        out = model(features, training=False)
        return tf.cast(out["start_logits"], tf.float32), tf.cast(out["end_logits"], tf.float32)

    def serve_text(question, context):
        question = tf.strings.regex_replace(question, r"^[\s\p{Z}]+", "")  # as make_qa_features' lstrip
        pair = (question, context) if model.question_first else (context, question)
        tokens = tokenizer(*pair, return_offsets=True)
        features = {k: tokens[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        start_logits, end_logits = logits(features)
        found, first, last, score = best_spans(
            start_logits, end_logits, tf.equal(tokens["sequence_ids"], context_segment), tokens["offset_starts"],
            tokens["offset_ends"], tokens["attention_mask"], n_best=model.n_best,
            max_answer_length=model.max_answer_length)
        null_score = start_logits[:, 0] + end_logits[:, 0]  # CLS: "no answer"
        answered = found
        if model.version_2:
            answered &= null_score - score <= model.null_threshold
        begin = tf.gather(tokens["offset_starts"], first, batch_dims=1)
        end = tf.gather(tokens["offset_ends"], last, batch_dims=1)
        text = tf.strings.substr(context, begin, end - begin, unit="UTF8_CHAR")
        return {
            "answer": tf.where(answered, text, ""),
            "answer_start": tf.where(answered, begin, -1),
            "answer_end": tf.where(answered, end, -1),
            "score": tf.where(answered, score, null_score),
        }

    def serve_ids(input_ids, attention_mask, token_type_ids):
        features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        start_logits, end_logits = logits(features)
        return {"start_logits": start_logits, "end_logits": end_logits}

    endpoints = {
        "serving_default": (serve_text, [tf.TensorSpec([None], tf.string, name="question"),
                                         tf.TensorSpec([None], tf.string, name="context")]),
        "serve_ids": (serve_ids, ids_signature()),
    }
    return endpoints, [tokenizer]
