"""`TokenClassifier`: a tfft encoder with a dropout + dense head on every token (NER, POS, ...)."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
from keras import ops

from tfft.encoders import Encoder
from tfft.encoders.encoder import encoder_class_for
from tfft.tasks.token_classification.features import IGNORE, make_token_features, pad_windows, word_predictions
from tfft.tasks.task_model import TaskModel
from tfft.tasks.token_classification.schemes import extract_entities

logger = logging.getLogger("tfft")


def masked_token_loss(y_true, y_pred):
    """Cross-entropy averaged over the labelled tokens (targets != -100), as transformers computes it.

    Under a strategy with several replicas the average is over the labelled tokens of the whole
    global batch, not of each replica's part (whose token counts differ), so the summed gradient
    is the one a single device computes on that batch.
    """
    y_true = ops.cast(y_true, "int32")
    mask = ops.cast(ops.not_equal(y_true, IGNORE), "float32")
    losses = keras.losses.sparse_categorical_crossentropy(ops.maximum(y_true, 0), ops.cast(y_pred, "float32"),
                                                          from_logits=True)
    count = ops.sum(mask)
    if _replicas_in_sync() > 1:
        import tensorflow as tf

        # Keras leaves a loss function's scalar as it is (no division by the replica count) and
        # sums the replicas' gradients: each replica's share of the global batch's mean.
        count = tf.distribute.get_replica_context().all_reduce("SUM", tf.stop_gradient(count))
    return ops.sum(losses * mask) / ops.maximum(count, 1.0)


def _replicas_in_sync():
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return 1
    return tf.distribute.get_strategy().num_replicas_in_sync


@keras.saving.register_keras_serializable(package="tfft")
class TokenAccuracy(keras.metrics.Mean):
    """Accuracy over the labelled tokens (targets != -100)."""

    def __init__(self, name="token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        mask = ops.cast(ops.not_equal(y_true, IGNORE), "float32")
        correct = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), "float32")
        return super().update_state(correct, sample_weight=mask)


def hf_token_classification_class(encoder) -> str:
    """transformers' `*ForTokenClassification` for the encoder's architecture (e.g. BertForTokenClassification)."""
    return type(encoder).hf_model_class.replace("Model", "ForTokenClassification")


@keras.saving.register_keras_serializable(package="tfft")
class TokenClassifier(TaskModel):
    """Tags every word of a text: named entities (IOB2/IOBES/IO tags), parts of speech, ...

    The head is transformers' `*ForTokenClassification` head (dropout + dense on each token's
    hidden state), so such checkpoints load with their head and labels, and `save_pretrained`
    writes one transformers loads with the same logits.

    Example:
        >>> model = tfft.TokenClassifier.from_pretrained("path/to/minilm", labels=["O", "B-PER", "I-PER"])
        >>> model.compile(optimizer="adamw")       # masked cross-entropy, token accuracy
        >>> model.fit(train_ds, epochs=10)
        >>> model.predict_texts(["Barack Obama visited Paris"])
        [[{'label': 'PER', 'text': 'Barack Obama', 'start': 0, 'end': 12, 'score': 0.97}, ...]]

    Args:
        encoder: a tfft `Encoder` (built without pooler).
        labels: tag names in id order (e.g. "O", "B-PER", "I-PER").
        dropout: before the output layer; default the encoder's hidden dropout.
        scheme: the tag scheme, "IOB2", "IOBES" or "IO": how tags become entities.
    """

    def __init__(self, encoder, labels, dropout=None, scheme="IOB2", **kwargs):
        super().__init__(encoder, **kwargs)
        if not labels:
            raise ValueError("give the tag names (labels=[...])")
        self.labels = [str(label) for label in labels]
        self.scheme = scheme
        self.dropout_rate = encoder.config.hidden_dropout if dropout is None else dropout
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy)
        self.classifier = self.output_layer(len(self.labels), name="classifier")
        self.built = True

    @property
    def num_labels(self):
        return len(self.labels)

    @classmethod
    def from_pretrained(cls, name_or_path, labels=None, tokenizer=True, **kwargs):
        """Loads the encoder, its tokenizer and, from a transformers `*ForTokenClassification`
        checkpoint, the head with its `id2label` names (when `labels` is not given or equals
        them). Other labels than the head's start a new head, logged on the `tfft` logger.
        Keyword arguments go to the constructor (`dropout`, `scheme`, `dtype`)."""
        from tfft.encoders.config import read_hf_config
        from tfft.hub import resolve_pretrained_dir
        from tfft.tokenizers import Tokenizer

        model_dir = resolve_pretrained_dir(name_or_path)
        hf_config = read_hf_config(model_dir)
        encoder_class_for(hf_config["model_type"], source=Path(model_dir) / "config.json")
        dtype = kwargs.get("dtype")
        encoder, unused = Encoder.from_pretrained(model_dir, lm_head=False, pooler=False, return_unused=True,
                                                  **({"dtype": dtype} if dtype else {}))
        head = {name: unused[name] for name in ("classifier.weight", "classifier.bias") if name in unused}
        head_labels = None
        if len(head) == 2:
            num = head["classifier.bias"].shape[0]
            id2label = {int(i): str(n) for i, n in (hf_config.get("id2label") or {}).items()}
            head_labels = [id2label.get(i, f"LABEL_{i}") for i in range(num)]
            if hf_config.get(encoder.hf_classifier_dropout_key) is not None:
                kwargs.setdefault("dropout", hf_config[encoder.hf_classifier_dropout_key])
        if labels is None:
            if head_labels is None:
                raise ValueError(f"{model_dir} has no token-classification head: give the tag names (labels=[...])")
            labels = head_labels
        model = cls(encoder, labels=labels, **kwargs)
        if head_labels is not None:
            if list(labels) == head_labels:
                model.classifier.kernel.assign(head["classifier.weight"].T.astype("float32"))
                model.classifier.bias.assign(head["classifier.bias"].astype("float32"))
                encoder.loading_report.claim(list(head))
            else:
                logger.warning("%s: the checkpoint's head has labels %s, not %s; it starts newly initialized",
                               model_dir, head_labels, list(labels))
        encoder.loading_report.log()
        if tokenizer:
            model.tokenizer = Tokenizer.from_pretrained(model_dir)
        return model

    def call(self, inputs, training=None):
        sequence = self.encoder(inputs, training=training)["sequence_output"]
        return self.classifier(self.dropout(sequence, training=training))

    def compile(self, optimizer="adamw", loss=None, metrics=None, **kwargs):
        """Keras `compile` with masked cross-entropy and token accuracy (targets -100 are skipped)."""
        super().compile(optimizer=optimizer, loss=loss or masked_token_loss,
                        metrics=[TokenAccuracy()] if metrics is None else metrics, **kwargs)

    # --- prediction ---------------------------------------------------------------------------

    def predict_words(self, words, batch_size=32, max_length=None, stride=None):
        """Tags of pre-split words: per sentence, (tag names, probabilities), one per word.

        Words that do not fit `max_length` (without `stride`) are tagged "O" with probability 0.
        """
        from tfft.export.saved_model import default_max_length

        max_length = max_length or default_max_length(self.encoder)
        features = make_token_features(words, self.tokenizer, max_length=max_length, stride=stride)
        logits = []
        for start in range(0, len(features), batch_size):
            batch = pad_windows(features, range(start, min(start + batch_size, len(features))),
                                self.tokenizer.pad_token_id or 0)
            logits.extend(np.asarray(self(batch, training=False), np.float32))
        tags, scores = word_predictions(features, logits, [len(w) for w in words])
        outside = self.labels.index("O") if "O" in self.labels else 0
        return [([self.labels[t if t >= 0 else outside] for t in row], score) for row, score in zip(tags, scores)]

    def predict_texts(self, texts, batch_size=32, max_length=None, stride=None):
        """Entities in raw texts: per text, a list of {label, text, start, end, score}.

        Words are the tokenizer's pre-tokenizer words; `start`/`end` are character offsets into
        the text; `score` is the mean probability of the entity's word tags.
        """
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer attached; load it with from_pretrained")
        texts = [texts] if isinstance(texts, str) else list(texts)
        spans = self.tokenizer.split_words(texts)
        words = [[text[a:b] for a, b in row] for text, row in zip(texts, spans)]
        keep = [i for i, row in enumerate(words) if row]
        tagged = dict(zip(keep, self.predict_words([words[i] for i in keep], batch_size, max_length, stride)))
        results = []
        for i, text in enumerate(texts):
            if i not in tagged:
                results.append([])
                continue
            tags, scores = tagged[i]
            results.append([
                {"label": label, "text": text[spans[i][first][0]:spans[i][last][1]],
                 "start": spans[i][first][0], "end": spans[i][last][1],
                 "score": float(np.mean(scores[first : last + 1]))}
                for label, first, last in extract_entities(list(tags), scheme=self.scheme)])
        return results

    # --- export -------------------------------------------------------------------------------

    def serving_signatures(self, max_length):
        """Export signatures (see `tfft.export_saved_model`):

            serving_default(text) -> per token: tags, token_starts, token_ends, word_ids;
                per entity [batch, entities]: entity_labels, entity_texts, entity_starts,
                entity_ends (character offsets into the text), entity_scores; num_entities
            serve_ids(input_ids, attention_mask, token_type_ids) -> logits, tags
        """
        from tfft.tasks.token_classification.serving import serving_signatures

        return serving_signatures(self, max_length)

    # --- saving -------------------------------------------------------------------------------

    def save_pretrained(self, save_dir):
        """Writes a transformers `*ForTokenClassification` checkpoint (config.json with `id2label`,
        model.safetensors, the tokenizer files); `AutoModelForTokenClassification` loads it with
        the same logits."""
        encoder = self.encoder
        hf_config = encoder.config_to_hf(encoder.config)
        hf_config.update(
            architectures=[hf_token_classification_class(encoder)],
            num_labels=self.num_labels,
            id2label={str(i): name for i, name in enumerate(self.labels)},
            label2id={name: i for i, name in enumerate(self.labels)},
        )
        hf_config[encoder.hf_classifier_dropout_key] = self.dropout_rate
        return self.write_pretrained(save_dir, hf_config, self.hf_weight_table())

    peft_task_type = "TOKEN_CLS"
    peft_head_modules = ("classifier",)

    def hf_weight_table(self):
        return self.per_token_head_weights(self.classifier)

    def head_config(self):
        return {
            "labels": self.labels,
            "dropout": self.dropout_rate,
            "scheme": self.scheme,
        }
