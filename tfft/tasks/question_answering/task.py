"""`task: question_answering`: extractive QA on SQuAD-format data, scored with the official exact / F1.

    task: question_answering
    model: {checkpoint: ..., version_2: true, max_answer_length: 30}
    data: {train: train-v2.0.json, dev: dev-v2.0.json, max_length: 384, doc_stride: 128}

Contexts longer than a window are read in windows overlapping by `doc_stride` tokens (training
and evaluation, as transformers' run_qa.py). For SQuAD v2.0 the no-answer threshold is tuned
on dev after training and saved with the model (model.keras and the export).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfft.config import DataConfig, ModelConfig, field
from tfft.errors import ConfigError, DataError
from tfft.tasks.base import Task


@dataclasses.dataclass
class QuestionAnsweringModelConfig(ModelConfig):
    dropout: float | None = field(None, help="Dropout before the start/end head; default none (as transformers' "
                                             "BERT question-answering head).")
    version_2: bool = field(False, help="SQuAD v2.0: questions may have no answer in the context.")
    max_answer_length: int = field(30, help="Longest answer span, in tokens.")
    n_best: int = field(20, help="Start and end candidates per window paired up when decoding answers.")


@dataclasses.dataclass
class QuestionAnsweringDataConfig(DataConfig):
    train: str = field(help="Training file: SQuAD v1.1/v2.0 JSON, HF flat JSON or JSONL.")
    max_length: int = field(384, help="Tokens per window (question, context and special tokens).")
    doc_stride: int = field(128, help="Context tokens that consecutive windows over a long context share.")
    max_question_length: int = field(64, help="Cut questions to this many tokens.")


class QuestionAnswering(Task):
    name = "question_answering"
    model_config = QuestionAnsweringModelConfig
    data_config = QuestionAnsweringDataConfig
    default_monitor = "val_f1"
    input_fields = ("question", "context")

    def __init__(self, config):
        super().__init__(config)
        self._features = {}  # id(examples) -> (examples, QAFeatures): windows are made once per split

    # -- data ------------------------------------------------------------------------------------
    def read(self, path, split):
        from tfft.tasks.question_answering.data import read_squad

        return read_squad(path, on_bad_row=self.config.data.on_bad_row)

    def check(self, examples):
        if self.config.model.version_2:
            return
        for i, impossible in enumerate(examples.is_impossible):
            if impossible or not examples.answers[i]:
                raise DataError(f"{examples.where(i)}: the question has no answer, but model.version_2 is false; "
                                "set model.version_2: true for SQuAD v2.0 data")

    # -- model and pipeline ----------------------------------------------------------------------
    def build_model(self, checkpoint):
        from tfft.tasks.question_answering.model import QuestionAnswerer

        m = self.config.model
        return QuestionAnswerer.from_pretrained(checkpoint, version_2=m.version_2, dropout=m.dropout,
                                                max_answer_length=m.max_answer_length, n_best=m.n_best)

    def features(self, model, examples):
        """The windows of labelled `examples` (made once per examples object)."""
        from tfft.tasks.question_answering.features import make_qa_features

        from tfft.export.saved_model import default_max_length

        key = id(examples)
        if key not in self._features:
            data = self.config.data
            if data.max_length > default_max_length(model.encoder):
                raise ConfigError(f"data.max_length={data.max_length} exceeds the {default_max_length(model.encoder)} "
                                  "positions of the encoder; lower data.max_length")
            try:
                features = make_qa_features(examples, model.tokenizer, max_length=data.max_length,
                                            doc_stride=data.doc_stride, max_question_length=data.max_question_length)
            except ValueError as e:  # doc_stride too large for a window: a config error, named by example
                raise DataError(str(e)) from None
            self._features[key] = (examples, features)  # holding examples keeps its id from being reused
        return self._features[key][1]

    def dataset(self, model, examples, training=False):
        """Batches of (features, {"start_logits": start position, "end_logits": end position}), one row per
        window; without `training`, in window order."""
        from tfft.data.pipeline import batch_token_rows, rows_from_arrays

        features = self.features(model, examples)
        data, t = self.config.data, self.config.training
        targets = np.stack([features.start_positions, features.end_positions], axis=1).astype(np.int32)
        ds = batch_token_rows(
            rows_from_arrays(features.input_ids, features.token_type_ids), targets,
            pad_id=model.tokenizer.pad_token_id, batch_size=t.batch_size, shuffle=training, seed=t.seed,
            bucket_boundaries="auto" if training and data.bucket_by_length else None, source=examples.source)
        return ds.map(lambda x, y: (x, {"start_logits": y[:, 0], "end_logits": y[:, 1]}))

    def _decode(self, model, examples):
        from tfft.tasks.question_answering.decoding import decode_answers

        features = self.features(model, examples)
        starts, ends = [], []
        for batch in self.dataset(model, examples).map(lambda x, y: x):  # windows in order, padded per batch
            out = model(batch, training=False)
            lengths = np.asarray(batch["attention_mask"]).sum(axis=1)
            for name, rows in (("start_logits", starts), ("end_logits", ends)):
                values = np.asarray(out[name], np.float32)
                rows.extend(values[i, :n] for i, n in enumerate(lengths))
        return decode_answers(examples, features, starts, ends, n_best=model.n_best,
                              max_answer_length=model.max_answer_length, null_threshold=model.null_threshold,
                              allow_no_answer=model.version_2)

    def after_fit(self, model, splits):
        """SQuAD v2.0: sets the model's no-answer threshold to the one maximising dev F1."""
        from tfft.tasks.question_answering.decoding import best_null_threshold

        if self.config.model.version_2 and splits.get("dev") is not None:
            dev = splits["dev"]
            threshold, _ = best_null_threshold(dev, self._decode(model, dev))
            model.null_threshold = float(threshold)

    # -- metrics ---------------------------------------------------------------------------------
    def evaluate(self, model, examples, verbose=0):
        from tfft.tasks.question_answering.metrics import squad_metrics

        metrics = squad_metrics(examples, self._decode(model, examples),
                                version_2=self.config.model.version_2)
        if self.config.model.version_2:
            metrics["null_threshold"] = model.null_threshold
        return {"task": "question_answering", **metrics}

    def format_report(self, metrics):
        from tfft.tasks.question_answering.metrics import format_qa_report

        report = format_qa_report(metrics)
        if "null_threshold" in metrics:
            report += f"\nno-answer threshold of the model: {metrics['null_threshold']:.4f}"
        return report

    def scalar_metrics(self, metrics):
        from tfft.tasks.question_answering.metrics import scalar_qa_metrics

        return scalar_qa_metrics({k: v for k, v in metrics.items() if k != "null_threshold"})

    # -- prediction ------------------------------------------------------------------------------
    def predict(self, model, records, batch_size=32):
        data = self.config.data
        try:
            return model.predict_answers([r["question"] for r in records], [r["context"] for r in records],
                                 batch_size=batch_size, max_length=data.max_length, doc_stride=data.doc_stride,
                                 max_question_length=data.max_question_length)
        except ValueError as e:  # doc_stride does not fit beside the question
            raise DataError(str(e)) from None
