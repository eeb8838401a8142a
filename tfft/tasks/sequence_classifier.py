"""`SequenceClassifier`: a tfft encoder with a dropout + dense head, for single-label,
multi-label and regression problems over one text or a pair."""

import logging
from pathlib import Path

import keras
import numpy as np
from keras import ops

from tfft.encoders import Encoder
from tfft.encoders.encoder import encoder_class_for, sequence_classification_model_types
from tfft.tasks.task_model import TaskModel

logger = logging.getLogger("tfft")

PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")
POOLINGS = ("pooler", "cls", "mean")


def masked_mean(sequence_output, attention_mask):
    mask = ops.cast(attention_mask, sequence_output.dtype)[:, :, None]
    return ops.sum(sequence_output * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="tfft")
class SequenceClassifier(TaskModel):
    """Classifies (or scores) a text or a text pair.

    Example:
        >>> model = tfft.SequenceClassifier.from_pretrained("path/to/minilm", labels=["negative", "positive"])
        >>> model.compile(optimizer="adamw")      # loss and metrics follow the problem type
        >>> model.fit(train_ds, validation_data=dev_ds, epochs=3)
        >>> model.predict_texts(["A gripping, funny film."])
        [{'label': 'positive', 'probabilities': {'negative': 0.03, 'positive': 0.97}}]

    `model.save_pretrained(directory)` writes a Hugging Face checkpoint that transformers'
    `AutoModelForSequenceClassification` loads with the same logits (BERT, ALBERT, RoBERTa, XLM-R
    with pooling="pooler"), and `from_pretrained` loads such a checkpoint with its head and label
    names. `model.save("model.keras")` saves any model, tokenizer included.

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
        super().__init__(encoder, **kwargs)
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
        self.labels = [str(label) for label in labels]
        self.problem_type = problem_type
        self.pooling = pooling
        self.text_pair = text_pair
        self.dropout_rate = encoder.config.hidden_dropout if dropout is None else dropout
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy)
        self.classifier = self.output_layer(len(self.labels), name="classifier")
        self.built = True

    @property
    def num_labels(self):
        return len(self.labels)

    @classmethod
    def from_pretrained(cls, name_or_path, labels=None, num_labels=None, tokenizer=True, **kwargs):
        """Loads the encoder, its tokenizer and, from a transformers `*ForSequenceClassification`
        checkpoint, the classification head.

        With a head in the checkpoint and neither `labels` nor `num_labels` given, the label names
        come from config.json's `id2label`; `problem_type` (and `dropout`) from config.json unless
        given. Asking for another number of labels than the head has starts a new head (logged on
        the `tfft` logger), as does a pooling other than "pooler". Keyword arguments go to the
        constructor (`problem_type`, `pooling`, `dropout`, `text_pair`, `dtype`).
        """
        from tfft.encoders.config import read_hf_config
        from tfft.hub import resolve_pretrained_dir
        from tfft.tokenizers import Tokenizer

        model_dir = resolve_pretrained_dir(name_or_path)
        hf_config = read_hf_config(model_dir)
        encoder_cls = encoder_class_for(hf_config["model_type"], source=Path(model_dir) / "config.json")
        head_class = encoder_cls.hf_sequence_classification_class
        use_head = bool(head_class) and kwargs.get("pooling", "pooler") == "pooler"
        pooler = "auto" if kwargs.get("pooling", "pooler") == "pooler" else False
        if use_head and head_class in (hf_config.get("architectures") or ()):
            pooler = True  # RoBERTa's head holds the pooler: its checkpoints have no `pooler.*`.
        dtype = kwargs.get("dtype")
        encoder, unused = Encoder.from_pretrained(
            model_dir,
            lm_head=False,
            pooler=pooler,
            return_unused=True,
            **({"dtype": dtype} if dtype else {}),
        )
        head_bias = unused.get(f"{encoder.hf_classifier_name}.bias") if use_head else None
        if head_bias is not None:
            if labels is None and num_labels is None:
                labels = _checkpoint_labels(hf_config, len(head_bias))
                # transformers treats a one-output head without problem_type as regression.
                if len(labels) == 1 and not hf_config.get("problem_type"):
                    kwargs.setdefault("problem_type", "regression")
            if hf_config.get("problem_type"):
                kwargs.setdefault("problem_type", hf_config["problem_type"])
            if hf_config.get(encoder.hf_classifier_dropout_key) is not None:
                kwargs.setdefault("dropout", hf_config[encoder.hf_classifier_dropout_key])
        model = cls(encoder, labels=labels, num_labels=num_labels, **kwargs)
        if head_bias is not None:
            model._load_hf_head(unused, source=model_dir)
        encoder.loading_report.log()
        if tokenizer:
            model.tokenizer = Tokenizer.from_pretrained(model_dir)
        return model

    def _load_hf_head(self, state, source):
        """Assigns the checkpoint's head tensors whose shapes fit; the others stay newly initialized."""
        encoder = self.encoder
        encoder_names = {id(variable): name for name, (variable, _) in encoder.weight_map().items()}
        used, filled, mismatched = [], [], []
        for name, (variable, transpose) in encoder.sequence_classification_head_weights(self.classifier).items():
            if name not in state:
                continue
            value = state[name].T if transpose else state[name]
            if value.shape != tuple(variable.shape):
                mismatched.append(f"{name} {tuple(state[name].shape)}")
                continue
            variable.assign(value.astype(keras.backend.standardize_dtype(variable.dtype)))
            used.append(name)
            if id(variable) in encoder_names:
                filled.append(encoder_names[id(variable)])
        encoder.loading_report.claim(used, filled)
        if mismatched:
            logger.warning(
                "%s: the checkpoint's classification head does not fit %d labels (%s); it starts newly initialized",
                source,
                self.num_labels,
                ", ".join(mismatched),
            )

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

    # --- export -------------------------------------------------------------------------------

    def serving_outputs(self, logits):
        """The exported outputs: `labels` (names; multi-label: comma-joined; regression: the value
        as text), `probabilities` and `logits`."""
        import tensorflow as tf

        probabilities = self.probabilities(logits)
        names = tf.constant(self.labels)
        if self.problem_type == "single_label_classification":
            labels = tf.gather(names, tf.argmax(probabilities, axis=-1))
        elif self.problem_type == "multi_label_classification":
            chosen = tf.where(probabilities >= 0.5, names[None, :], tf.constant(""))
            joined = tf.strings.reduce_join(chosen, axis=-1, separator=",")
            # Drop the separators of unchosen labels (RE2 has no lookahead): collapse runs, trim ends.
            labels = tf.strings.regex_replace(tf.strings.regex_replace(joined, ",+", ","), "^,|,$", "")
        else:
            labels = tf.strings.as_string(probabilities[:, 0])
        return {"labels": labels, "probabilities": probabilities, "logits": tf.cast(logits, tf.float32)}

    def serving_signatures(self, max_length):
        """Export signatures (see `tfft.export_saved_model`):

            serving_default(text[, text_pair]) -> labels (string), probabilities, logits
            serve_ids(input_ids, attention_mask, token_type_ids) -> the same outputs
        """
        import tensorflow as tf

        from tfft.export.saved_model import ids_signature

        tokenizer = self.tokenizer.as_keras_layer(max_length=max_length)

        def serve_ids(input_ids, attention_mask, token_type_ids):
            features = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return self.serving_outputs(self(features, training=False))

        text_spec = [tf.TensorSpec([None], tf.string, name="text")]
        if self.text_pair:
            text_spec.append(tf.TensorSpec([None], tf.string, name="text_pair"))

            def serve_text(text, text_pair):
                return self.serving_outputs(self(tokenizer(text, text_pair), training=False))
        else:

            def serve_text(text):
                return self.serving_outputs(self(tokenizer(text), training=False))

        endpoints = {"serving_default": (serve_text, text_spec), "serve_ids": (serve_ids, ids_signature())}
        return endpoints, [tokenizer]

    # --- saving -------------------------------------------------------------------------------

    def save_pretrained(self, save_dir):
        """Writes a Hugging Face checkpoint: config.json (with `id2label`, `label2id`,
        `problem_type`), model.safetensors in the layout of transformers'
        `*ForSequenceClassification`, and the tokenizer files when a tokenizer is attached.

        transformers' `AutoModelForSequenceClassification` loads it with the same logits. Raises
        `ValueError`, before writing anything, where transformers has no class computing them
        (ELECTRA, DistilBERT, pooling "cls" or "mean", an encoder without pooler).

        Example:
            >>> model.save_pretrained("runs/sentiment/hf")
            >>> transformers.AutoModelForSequenceClassification.from_pretrained("runs/sentiment/hf")
        """
        self._check_hf_format()
        encoder = self.encoder
        hf_config = encoder.config_to_hf(encoder.config)
        hf_config.update(
            architectures=[encoder.hf_sequence_classification_class],
            num_labels=self.num_labels,
            id2label={str(i): name for i, name in enumerate(self.labels)},
            label2id={name: i for i, name in enumerate(self.labels)},
            problem_type=self.problem_type,
        )
        hf_config[encoder.hf_classifier_dropout_key] = self.dropout_rate
        return self.write_pretrained(save_dir, hf_config, self.hf_weight_table())

    peft_task_type = "SEQ_CLS"
    peft_head_modules = ("classifier",)

    def hf_weight_table(self):
        return self.encoder.hf_weight_map(self.classifier)

    def _check_hf_format(self):
        encoder = self.encoder
        head_class = encoder.hf_sequence_classification_class
        if not head_class:
            problem = (
                f"no transformers *ForSequenceClassification class for model_type {encoder.config.model_type!r} "
                "computes tfft's logits (a classifier on the pooler: dense + tanh on the first token)"
            )
        elif self.pooling != "pooler":
            problem = f"transformers' {head_class} classifies the pooler output, not pooling={self.pooling!r}"
        elif encoder.pooler is None:
            problem = f"the encoder has no pooler, which transformers' {head_class} would initialize at random"
        elif self.problem_type == "single_label_classification" and self.num_labels == 1:
            problem = "transformers needs at least 2 labels for single_label_classification"
        else:
            return
        supported = ", ".join(sequence_classification_model_types())
        raise ValueError(
            f"cannot save {type(encoder).__name__} with pooling={self.pooling!r} in Hugging Face format: "
            f"{problem}. Supported: pooling='pooler' on {supported} encoders with a pooler; "
            "model.save('model.keras') saves any model"
        )

    def head_config(self):
        return {
            "labels": self.labels,
            "problem_type": self.problem_type,
            "pooling": self.pooling,
            "dropout": self.dropout_rate,
            "text_pair": self.text_pair,
        }


def _checkpoint_labels(hf_config, num_labels):
    """Label names in id order from config.json's `id2label`, when it has one per head output."""
    id2label = {int(i): str(name) for i, name in (hf_config.get("id2label") or {}).items()}
    if sorted(id2label) == list(range(num_labels)):
        return [id2label[i] for i in range(num_labels)]
    return [f"LABEL_{i}" for i in range(num_labels)]
