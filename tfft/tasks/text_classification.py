"""`task: text_classification`: one text or a pair -> one label, several labels, or a score.

The model is `SequenceClassifier`; the data are `tfft.data` examples (JSONL, CSV, TSV, TFRecord);
the metrics are `tfft.metrics`' classification, multi-label and regression reports.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfft.config import DataConfig, ModelConfig, field
from tfft.tasks.base import Task

# problem_type -> (LabelVocab problem type, tfft.metrics task)
PROBLEMS = {
    "single_label_classification": ("single_label", "classification"),
    "multi_label_classification": ("multi_label", "multilabel"),
    "regression": ("regression", "regression"),
}


@dataclasses.dataclass
class TextClassificationModelConfig(ModelConfig):
    pooling: str = field("pooler", help="Sentence vector for the head.", choices=("pooler", "cls", "mean"))
    problem_type: str = field("single_label_classification", help="Loss and outputs.", choices=tuple(PROBLEMS))
    labels: list[str] | None = field(None, help="Label names in id order; default: sorted training labels.")


@dataclasses.dataclass
class TextClassificationDataConfig(DataConfig):
    train: str = field(help="Training file (.jsonl, .csv, .tsv, .tfrecord).")
    text_column: str = field("text", help="Column or key of the text.")
    text_pair_column: str | None = field(None, help="Column of the second text, for pair tasks (NLI, paraphrase).")
    label_column: str = field("label", help="Column of the label (a list for multi-label).")


class TextClassification(Task):
    name = "text_classification"
    model_config = TextClassificationModelConfig
    data_config = TextClassificationDataConfig
    default_monitor = "val_accuracy"

    def __init__(self, config):
        super().__init__(config)
        self.label_vocab = None
        self._eval_data = {}  # id(examples) -> (dataset, labels): dev is tokenized once, not every epoch

    @property
    def input_fields(self):
        return ("text", "text_pair") if self.config.data.text_pair_column else ("text",)

    @property
    def _problem(self):
        return PROBLEMS[self.config.model.problem_type]

    # -- data ------------------------------------------------------------------------------------
    def read(self, path, split):
        from tfft.data import read_examples

        data = self.config.data
        return read_examples(path, text_column=data.text_column, text_pair_column=data.text_pair_column,
                             label_column=data.label_column, on_bad_row=data.on_bad_row)

    def fit_labels(self, train):
        from tfft.data import LabelVocab

        problem = self._problem[0]
        if self.config.model.labels:
            self.label_vocab = LabelVocab(problem_type=problem, names=tuple(self.config.model.labels))
        else:
            self.label_vocab = LabelVocab.from_examples(train, problem_type=problem)

    def check(self, examples):
        self.label_vocab.encode(examples)  # raises DataError naming file, line and label

    def save_state(self, run_dir):
        (run_dir / "labels.json").write_text(self.label_vocab.to_json(), encoding="utf-8")

    def load_state(self, run_dir):
        from tfft.data import LabelVocab

        self.label_vocab = LabelVocab.from_json((run_dir / "labels.json").read_text(encoding="utf-8"))

    # -- model and pipeline ----------------------------------------------------------------------
    def build_model(self, checkpoint):
        from tfft.tasks.sequence_classifier import SequenceClassifier

        model = self.config.model
        names = self.label_vocab.names
        return SequenceClassifier.from_pretrained(
            checkpoint, labels=list(names) or None, num_labels=None if names else 1,
            problem_type=model.problem_type, pooling=model.pooling, dropout=model.dropout,
            text_pair=self.config.data.text_pair_column is not None)

    def dataset(self, model, examples, training=False):
        from tfft.data import make_dataset

        data, t = self.config.data, self.config.training
        bucket = "auto" if training and data.bucket_by_length else None
        return make_dataset(examples, model.tokenizer, self.label_vocab, batch_size=t.batch_size,
                            max_length=data.max_length, shuffle=training, seed=t.seed, bucket_boundaries=bucket)

    # -- metrics ---------------------------------------------------------------------------------
    def evaluate(self, model, examples, verbose=0):
        from tfft.metrics import classification_metrics, multilabel_metrics, regression_metrics

        if id(examples) not in self._eval_data:
            dataset = self.dataset(model, examples)
            labels = np.concatenate([np.asarray(y) for _, y in dataset.as_numpy_iterator()])
            self._eval_data[id(examples)] = dataset, labels
        dataset, labels = self._eval_data[id(examples)]
        scores = np.asarray(model.predict(dataset.map(lambda x, y: x), verbose=verbose), np.float64)
        kind, names = self._problem[1], list(self.label_vocab.names)
        if kind == "classification":
            return classification_metrics(labels, scores, names)
        if kind == "multilabel":
            return multilabel_metrics(labels, 1.0 / (1.0 + np.exp(-scores)), names)
        return regression_metrics(labels, scores[:, 0])

    def format_report(self, metrics):
        from tfft.metrics import format_report

        return format_report(metrics)

    def scalar_metrics(self, metrics):
        from tfft.metrics import scalar_metrics

        return scalar_metrics(metrics)

    # -- prediction ------------------------------------------------------------------------------
    def predict(self, model, records, batch_size=32):
        texts = [r["text"] for r in records]
        pairs = [r["text_pair"] for r in records] if "text_pair" in self.input_fields else None
        return model.predict_texts(texts, pairs, batch_size=batch_size, max_length=self.config.data.max_length)
