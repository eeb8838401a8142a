"""`SequenceClassifier`: a tfft encoder with a dropout + dense head, for single-label,
multi-label and regression problems over one text or a pair."""

import keras
import numpy as np
from keras import ops

from tfft.encoders import Encoder

PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")
POOLINGS = ("pooler", "cls", "mean")


def masked_mean(sequence_output, attention_mask):
    mask = ops.cast(attention_mask, sequence_output.dtype)[:, :, None]
    return ops.sum(sequence_output * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="tfft")
class SequenceClassifier(keras.Model):
    """Classifies (or scores) a text or a text pair.

    Example:
        >>> model = tfft.SequenceClassifier.from_pretrained("path/to/minilm", labels=["negative", "positive"])
        >>> model.compile(optimizer="adamw")      # loss and metrics follow the problem type
        >>> model.fit(train_ds, validation_data=dev_ds, epochs=3)
        >>> model.predict_texts(["A gripping, funny film."])
        [{'label': 'positive', 'probabilities': {'negative': 0.03, 'positive': 0.97}}]

    Args:
        encoder: a tfft `Encoder`.
        labels: label names, in id order; or `num_labels` for unnamed labels (`LABEL_0`, ...).
            Regression takes `num_labels=1` (the default for it).
        problem_type: "single_label_classification" (softmax), "multi_label_classification"
            (independent sigmoids) or "regression".
        pooling: "pooler" (the encoder's `pooled_output`, as Hugging Face's
            `*ForSequenceClassification` for BERT), "cls" (first token's hidden state) or
            "mean" (mean over real tokens).
        dropout: before the output layer; default the encoder's hidden dropout.
        text_pair: whether the model was trained on pairs (`text`, `text_pair`); export uses it.
    """

    def __init__(
        self,
        encoder,
        labels=None,
        num_labels=None,
        problem_type="single_label_classification",
        pooling="pooler",
        dropout=None,
        text_pair=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type {problem_type!r} is not one of {PROBLEM_TYPES}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}")
        if labels is None:
            num_labels = num_labels or (1 if problem_type == "regression" else None)
            if not num_labels:
                raise ValueError("give the label names (labels=[...]) or num_labels")
            labels = [f"LABEL_{i}" for i in range(num_labels)]
        elif num_labels is not None and num_labels != len(labels):
            raise ValueError(f"num_labels={num_labels} but {len(labels)} label names were given")
        self.encoder = encoder
        self.labels = [str(label) for label in labels]
        self.problem_type = problem_type
        self.pooling = pooling
        self.text_pair = text_pair
        self.dropout_rate = encoder.config.hidden_dropout if dropout is None else dropout
        self.tokenizer = None  # attached by from_pretrained; used by predict_texts and export
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy)
        self.classifier = keras.layers.Dense(
            len(self.labels),
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=encoder.config.initializer_range),
            name="classifier",
            dtype=self.dtype_policy,
        )
        self.classifier.build((None, encoder.config.hidden_size))
        self.built = True

    @property
    def num_labels(self):
        return len(self.labels)

    @classmethod
    def from_pretrained(cls, name_or_path, labels=None, num_labels=None, tokenizer=True, **kwargs):
        """Loads the encoder (and its tokenizer) from a Hugging Face checkpoint; the head is new.

        Keyword arguments go to the constructor (`problem_type`, `pooling`, `dropout`,
        `text_pair`, `dtype`).
        """
        from tfft.tokenizers import Tokenizer

        dtype = kwargs.get("dtype")
        encoder = Encoder.from_pretrained(
            name_or_path,
            lm_head=False,
            pooler="auto" if kwargs.get("pooling", "pooler") == "pooler" else False,
            **({"dtype": dtype} if dtype else {}),
        )
        model = cls(encoder, labels=labels, num_labels=num_labels, **kwargs)
        if tokenizer:
            model.tokenizer = Tokenizer.from_pretrained(name_or_path)
        return model

    def call(self, inputs, training=None):
        outputs = self.encoder(inputs, training=training)
        if self.pooling == "pooler":
            pooled = outputs["pooled_output"]
        elif self.pooling == "cls":
            pooled = outputs["sequence_output"][:, 0]
        else:
            mask = inputs["attention_mask"] if isinstance(inputs, dict) and "attention_mask" in inputs else None
            sequence = outputs["sequence_output"]
            pooled = ops.mean(sequence, axis=1) if mask is None else masked_mean(sequence, mask)
        return self.classifier(self.dropout(pooled, training=training))

    # --- outputs ------------------------------------------------------------------------------

    def probabilities(self, logits):
        """Softmax, sigmoid or identity of the logits, by problem type."""
        logits = ops.cast(logits, "float32")
        if self.problem_type == "single_label_classification":
            return ops.softmax(logits, axis=-1)
        if self.problem_type == "multi_label_classification":
            return ops.sigmoid(logits)
        return logits

    def default_loss(self):
        if self.problem_type == "single_label_classification":
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if self.problem_type == "multi_label_classification":
            return keras.losses.BinaryCrossentropy(from_logits=True)
        return keras.losses.MeanSquaredError()

    def default_metrics(self):
        if self.problem_type == "single_label_classification":
            return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if self.problem_type == "multi_label_classification":
            return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)]
        return [keras.metrics.MeanSquaredError(name="mse")]

    def compile(self, optimizer="adamw", loss=None, metrics=None, **kwargs):
        """Keras `compile` with the problem type's loss and metrics as defaults."""
        super().compile(
            optimizer=optimizer,
            loss=loss or self.default_loss(),
            metrics=self.default_metrics() if metrics is None else metrics,
            **kwargs,
        )

    def predict_texts(self, texts, text_pairs=None, batch_size=32, max_length=None, threshold=0.5):
        """Label names and probabilities for raw texts.

        Returns one dict per text: `label` (a name; for multi-label a list of names whose
        probability passes `threshold`; for regression the value) and `probabilities`
        (name -> probability) or `score`.
        """
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer attached; load it with from_pretrained")
        texts = [texts] if isinstance(texts, str) else list(texts)
        if text_pairs is not None:
            text_pairs = [text_pairs] if isinstance(text_pairs, str) else list(text_pairs)
        results = []
        for start in range(0, len(texts), batch_size):
            pairs = None if text_pairs is None else text_pairs[start : start + batch_size]
            batch = self.tokenizer(texts[start : start + batch_size], pairs, max_length=max_length)
            probs = np.asarray(self.probabilities(self(batch, training=False)))
            results.extend(self._describe(row, threshold) for row in probs)
        return results

    def _describe(self, row, threshold):
        if self.problem_type == "regression":
            return {"label": float(row[0]), "score": float(row[0])}
        probabilities = {name: float(p) for name, p in zip(self.labels, row)}
        if self.problem_type == "multi_label_classification":
            return {"label": [n for n, p in probabilities.items() if p >= threshold], "probabilities": probabilities}
        return {"label": self.labels[int(np.argmax(row))], "probabilities": probabilities}

    # --- saving -------------------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "labels": self.labels,
            "problem_type": self.problem_type,
            "pooling": self.pooling,
            "dropout": self.dropout_rate,
            "text_pair": self.text_pair,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(**config)

    def save_assets(self, dir_path):
        """Keras-format saving: the tokenizer files travel inside the `.keras` archive."""
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(dir_path)

    def load_assets(self, dir_path):
        from tfft.tokenizers import Tokenizer
        from tfft.errors import TokenizerError

        try:
            self.tokenizer = Tokenizer.from_pretrained(dir_path)
        except TokenizerError:
            self.tokenizer = None
