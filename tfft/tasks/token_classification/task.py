"""`task: token_classification`: a tag per word (named entities), with entity-level metrics.

    task: token_classification
    model: {checkpoint: ..., labels: null}          # tags: default from the training data
    data: {train: train.conll, dev: dev.conll, scheme: IOB2, label_all_subwords: false, stride: null}
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from tfft.config import DataConfig, ModelConfig, field
from tfft.errors import DataError
from tfft.tasks.base import Task
from tfft.tasks.token_classification.features import IGNORE, make_token_features, word_predictions
from tfft.tasks.token_classification.schemes import check_tag, entity_types, scheme_name


@dataclasses.dataclass
class TokenClassificationModelConfig(ModelConfig):
    labels: list[str] | None = field(None, help="Tag names in id order; default: 'O' then the training "
                                                "data's tags sorted by entity type.")


@dataclasses.dataclass
class TokenClassificationDataConfig(DataConfig):
    train: str = field(help="Training file: CoNLL (.conll/.txt/.tsv), JSONL tokens+tags, or JSONL text+entities.")
    format: str | None = field(None, help="File format; default from the suffix.", choices=(None, "conll", "jsonl"))
    tag_column: int = field(-1, help="CoNLL column of the tag (0-based; negative from the end).")
    word_column: int = field(0, help="CoNLL column of the word.")
    scheme: str = field("IOB2", help="Tag scheme.", choices=("IOB2", "BIO", "IOBES", "BIOES", "IO"))
    label_all_subwords: bool = field(False, help="Train on every subword of a word, not only the first.")
    stride: int | None = field(None, help="Split sentences longer than max_length into windows overlapping "
                                          "by this many tokens; null truncates (cut words count as missed).")
    metrics_mode: str = field("default", help="Entity matching: seqeval's default (lenient) or strict mode.",
                              choices=("default", "strict"))


def tag_names(examples, scheme="IOB2"):
    """The tag vocabulary of `examples`: "O", then each entity type's tags (B-, I-; or B-, I-, E-, S-)."""
    prefixes = {"IOB2": "BI", "IOBES": "BIES", "IO": "I"}[scheme_name(scheme)]
    return ["O"] + [f"{p}-{t}" for t in entity_types(examples.tags) for p in prefixes]


def encode_tags(examples, labels):
    """Tag ids per sentence; DataError naming the file and line of a tag not in `labels`."""
    index = {name: i for i, name in enumerate(labels)}
    out = []
    for i, tags in enumerate(examples.tags):
        for j, tag in enumerate(tags):
            if tag not in index:
                raise DataError(f"{examples.where_word(i, j)}: tag {tag!r} is not one of the model's tags "
                                f"({', '.join(labels)}); the training data has no such tag")
        out.append(np.asarray([index[t] for t in tags], np.int32))
    return out


def make_token_dataset(examples, model, *, batch_size=32, max_length=128, stride=None, label_all_subwords=False,
                       shuffle=False, seed=0, bucket_by_length=False, features=None):
    """A batched `(features, tag ids per token)` dataset of `examples` for `model` (a `TokenClassifier`).

    Windows come from `make_token_features` (first subword labelled, -100 elsewhere); batches are
    padded to their longest window; `shuffle` and `bucket_by_length` are for training.

    Example:
        >>> train = read_token_examples("data/ner-wnut16/train.conll")
        >>> model = tfft.TokenClassifier.from_pretrained(checkpoint, labels=tag_names(train))
        >>> model.fit(make_token_dataset(train, model, batch_size=16, shuffle=True), epochs=10)
    """
    from tfft.data.pipeline import batch_token_rows, rows_from_arrays

    if features is None:
        tag_ids = None if examples.tags is None else encode_tags(examples, model.labels)
        features = make_token_features(examples.words, model.tokenizer, tag_ids=tag_ids, label_names=model.labels,
                                       max_length=max_length, stride=stride, label_all_subwords=label_all_subwords)
    return batch_token_rows(rows_from_arrays(features.input_ids, features.token_type_ids), features.labels,
                            pad_id=model.tokenizer.pad_token_id, batch_size=batch_size, shuffle=shuffle, seed=seed,
                            bucket_boundaries="auto" if bucket_by_length else None, target_padding=IGNORE,
                            source=examples.source)


class TokenClassification(Task):
    name = "token_classification"
    model_config = TokenClassificationModelConfig
    data_config = TokenClassificationDataConfig
    default_monitor = "val_f1"

    def __init__(self, config):
        super().__init__(config)
        self.labels = None
        self._features = {}  # id(examples) -> TokenFeatures, so dev is tokenized once

    @property
    def scheme(self):
        return scheme_name(self.config.data.scheme)

    # -- data ------------------------------------------------------------------------------------
    def read(self, path, split):
        from tfft.tasks.token_classification.data import read_token_examples

        data = self.config.data
        return read_token_examples(path, format=data.format, tag_column=data.tag_column,
                                   word_column=data.word_column, scheme=self.scheme, on_bad_row=data.on_bad_row)

    def fit_labels(self, train):
        if self.config.model.labels:
            labels = list(self.config.model.labels)
            for label in labels:
                try:
                    check_tag(label, self.scheme)
                except ValueError as e:
                    raise DataError(f"model.labels: {e}") from None
        else:
            labels = tag_names(train, self.scheme)
        self.labels = labels

    def check(self, examples):
        if examples.tags is not None:
            encode_tags(examples, self.labels)

    def save_state(self, run_dir):
        (run_dir / "labels.json").write_text(json.dumps({"labels": self.labels, "scheme": self.scheme}, indent=2,
                                                        ensure_ascii=False) + "\n", encoding="utf-8")

    def load_state(self, run_dir):
        self.labels = json.loads((run_dir / "labels.json").read_text(encoding="utf-8"))["labels"]

    # -- model and pipeline ----------------------------------------------------------------------
    def build_model(self, checkpoint):
        from tfft.tasks.token_classification.model import TokenClassifier

        return TokenClassifier.from_pretrained(checkpoint, labels=self.labels, dropout=self.config.model.dropout,
                                               scheme=self.scheme)

    def features(self, model, examples):
        key = id(examples)
        if key not in self._features:
            tag_ids = None if examples.tags is None else encode_tags(examples, self.labels)
            data = self.config.data
            self._features[key] = make_token_features(
                examples.words, model.tokenizer, tag_ids=tag_ids, label_names=self.labels,
                max_length=data.max_length, stride=data.stride, label_all_subwords=data.label_all_subwords)
        return self._features[key]

    def dataset(self, model, examples, training=False):
        data, t = self.config.data, self.config.training
        return make_token_dataset(examples, model, batch_size=t.batch_size, shuffle=training, seed=t.seed,
                                  bucket_by_length=training and data.bucket_by_length,
                                  features=self.features(model, examples))

    # -- metrics ---------------------------------------------------------------------------------
    def evaluate(self, model, examples, verbose=0):
        from tfft.tasks.token_classification.metrics import entity_metrics

        features = self.features(model, examples)
        dataset = self.dataset(model, examples).map(lambda x, y: x)
        logits = []
        for batch in dataset:  # windows in file order, each batch padded to its longest row
            logits.extend(np.asarray(model(batch, training=False), np.float32))
        tags, _ = word_predictions(features, logits, [len(w) for w in examples.words])
        outside = self.labels.index("O") if "O" in self.labels else 0
        predicted = [[self.labels[t if t >= 0 else outside] for t in row] for row in tags]
        metrics = entity_metrics(examples.tags, predicted, mode=self.config.data.metrics_mode, scheme=self.scheme)
        metrics["task"] = "token_classification"
        metrics["truncated_words"] = int(sum((row < 0).sum() for row in tags))
        return metrics

    def format_report(self, metrics):
        from tfft.tasks.token_classification.metrics import format_entity_report

        report = format_entity_report(metrics)
        if metrics.get("truncated_words"):
            report += (f"\n{metrics['truncated_words']} words past max_length were predicted O "
                       "(set data.stride to tag them in overlapping windows)")
        return report

    def scalar_metrics(self, metrics):
        from tfft.tasks.token_classification.metrics import scalar_entity_metrics

        return scalar_entity_metrics(metrics)

    # -- prediction ------------------------------------------------------------------------------
    def predict(self, model, records, batch_size=32):
        entities = model.predict_texts([r["text"] for r in records], batch_size=batch_size,
                                       max_length=self.config.data.max_length, stride=self.config.data.stride)
        return [{"entities": row} for row in entities]
