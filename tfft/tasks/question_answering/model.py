"""`QuestionAnswerer`: a tfft encoder with a dense start/end head on every token (extractive QA, SQuAD)."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
from keras import ops

from tfft.encoders import Encoder
from tfft.encoders.encoder import encoder_class_for
from tfft.tasks.task_model import TaskModel

logger = logging.getLogger("tfft")

HEAD_TENSORS = ("qa_outputs.weight", "qa_outputs.bias")
OUTPUTS = ("start_logits", "end_logits")


def span_position_loss(y_true, y_pred):
    """Cross-entropy of one answer boundary (a token index per row) over the [batch, seq] logits."""
    return keras.losses.sparse_categorical_crossentropy(ops.cast(y_true, "int32"), ops.cast(y_pred, "float32"),
                                                        from_logits=True)


def hf_question_answering_class(encoder) -> str:
    """transformers' `*ForQuestionAnswering` for the encoder's architecture (e.g. BertForQuestionAnswering)."""
    return type(encoder).hf_model_class.replace("Model", "ForQuestionAnswering")


@keras.saving.register_keras_serializable(package="tfft")
class QuestionAnswerer(TaskModel):
    """Finds the answer to a question as a span of a context (SQuAD v1.1; v2.0 may answer nothing).

    The head is transformers' `*ForQuestionAnswering` head (`qa_outputs`: a dense layer giving a
    start and an end logit per token), so such checkpoints load with their head and
    `save_pretrained` writes one transformers loads with the same logits. The model returns
    {"start_logits", "end_logits"}, each [batch, seq]; `compile` trains both on the integer
    start / end token positions, the loss being (CE(start) + CE(end)) / 2 as in transformers.

    Example:
        >>> model = tfft.QuestionAnswerer.from_pretrained("path/to/minilm", version_2=True)
        >>> model.compile(optimizer="adamw")
        >>> model.fit(train_ds, epochs=2)      # (features, {"start_logits": [b], "end_logits": [b]})
        >>> model.predict_answers("Where is the Eiffel Tower?", "The Eiffel Tower is in Paris.")
        {'answer': 'Paris', 'start': 23, 'end': 28, 'score': 11.2}

    Args:
        encoder: a tfft `Encoder` (built without pooler).
        max_answer_length: longest answer span, in tokens.
        n_best: start and end candidates per window that decoding pairs up.
        version_2: the model may answer nothing (SQuAD v2.0).
        null_threshold: with `version_2`, answer nothing when the no-answer score (start + end
            logit of CLS) exceeds the best span's by more than this; tuned on dev by the task.
        question_first: the question is the first sequence of the pair (False for tokenizers that
            pad on the left, as transformers' run_qa.py does).
        dropout: before the head; default 0 (transformers' BERT QA head has none).
    """

    def __init__(self, encoder, max_answer_length=30, n_best=20, version_2=False, null_threshold=0.0,
                 question_first=True, dropout=None, **kwargs):
        super().__init__(encoder, **kwargs)
        if max_answer_length < 1 or n_best < 1:
            raise ValueError(f"max_answer_length and n_best must be >= 1, got {max_answer_length} and {n_best}")
        self.max_answer_length = int(max_answer_length)
        self.n_best = int(n_best)
        self.version_2 = bool(version_2)
        self.null_threshold = float(null_threshold)
        self.question_first = bool(question_first)
        self.dropout_rate = 0.0 if dropout is None else float(dropout)
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy)
        self.qa_outputs = self.output_layer(2, name="qa_outputs")
        self.built = True

    @classmethod
    def from_pretrained(cls, name_or_path, tokenizer=True, **kwargs):
        """Loads the encoder, its tokenizer and, from a transformers `*ForQuestionAnswering`
        checkpoint, the `qa_outputs` head (else a new one).
        Keyword arguments go to the constructor (`version_2`, `max_answer_length`, `dtype`, ...);
        `question_first` defaults to the tokenizer's padding side (right: question first)."""
        from tfft.encoders.config import read_hf_config
        from tfft.hub import resolve_pretrained_dir
        from tfft.tokenizers import Tokenizer

        model_dir = resolve_pretrained_dir(name_or_path)
        hf_config = read_hf_config(model_dir)
        encoder_class_for(hf_config["model_type"], source=Path(model_dir) / "config.json")
        dtype = kwargs.get("dtype")
        encoder, unused = Encoder.from_pretrained(model_dir, lm_head=False, pooler=False, return_unused=True,
                                                  **({"dtype": dtype} if dtype else {}))
        attached = Tokenizer.from_pretrained(model_dir) if tokenizer else None
        if attached is not None:
            kwargs.setdefault("question_first", attached.hf_tokenizer.padding_side != "left")
        model = cls(encoder, **kwargs)
        head = {name: unused[name] for name in HEAD_TENSORS if name in unused}
        # Dropped on purpose, as transformers' *ForQuestionAnswering does (no pooler on that head).
        encoder.loading_report.claim([name for name in unused if name.startswith("pooler")])
        if len(head) == 2 and head["qa_outputs.bias"].shape != (2,):
            logger.warning("%s: qa_outputs has %d outputs, not a start and an end; it starts newly initialized",
                           model_dir, head["qa_outputs.bias"].shape[0])
        elif len(head) == 2:
            model.qa_outputs.kernel.assign(head["qa_outputs.weight"].T.astype("float32"))
            model.qa_outputs.bias.assign(head["qa_outputs.bias"].astype("float32"))
            encoder.loading_report.claim(list(head))
        else:
            logger.info("%s has no question-answering head; qa_outputs starts newly initialized", model_dir)
        encoder.loading_report.log()
        model.tokenizer = attached
        return model

    def call(self, inputs, training=None):
        sequence = self.encoder(inputs, training=training)["sequence_output"]
        logits = self.qa_outputs(self.dropout(sequence, training=training))
        return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}

    def compile(self, optimizer="adamw", loss=None, metrics=None, **kwargs):
        """Keras `compile`; the default loss is the mean of the start and end cross-entropies."""
        if loss is None:
            loss = {name: span_position_loss for name in OUTPUTS}
            kwargs.setdefault("loss_weights", {name: 0.5 for name in OUTPUTS})
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    # --- prediction ---------------------------------------------------------------------------

    def window_logits(self, features, batch_size=32):
        """(start, end) logits of every window of `features` (a `QAFeatures`), one 1-D array each."""
        from tfft.tasks.question_answering.features import pad_features

        pad_id = self.tokenizer.pad_token_id or 0
        starts, ends = [], []
        for first in range(0, len(features), batch_size):
            indices = range(first, min(first + batch_size, len(features)))
            batch = pad_features(features, indices, pad_id)
            out = self({k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}, training=False)
            start, end = (np.asarray(ops.convert_to_numpy(out[k]), np.float32) for k in OUTPUTS)
            for row, i in enumerate(indices):
                n = len(features.input_ids[i])
                starts.append(start[row, :n])
                ends.append(end[row, :n])
        return starts, ends

    def predict_answers(self, questions, contexts, batch_size=32, max_length=384, doc_stride=128,
                        max_question_length=64):
        """Answers to questions over contexts: per pair {"answer", "start", "end", "score"}.

        `start`/`end` are the answer's character span in its context (None, with answer "", for
        no answer); `score` is the span's start + end logit, for no answer the CLS position's
        (None when no span qualifies at all). Long
        contexts are read in windows of `max_length` tokens (at most the encoder's positions)
        overlapping by `doc_stride` tokens. A single question and context give one dict.
        (Keras' `predict` stays as it is: start and end logits of token inputs.)

        Example:
            >>> model.predict_answers(["Who built it?"], ["Gustave Eiffel's company built the tower."])
            [{'answer': "Gustave Eiffel's company", 'start': 0, 'end': 24, 'score': 9.7}]
        """
        from tfft.tasks.question_answering.data import QAExamples
        from tfft.tasks.question_answering.decoding import decode_answers
        from tfft.tasks.question_answering.features import make_qa_features

        from tfft.export.saved_model import default_max_length

        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer attached; load it with from_pretrained")
        max_length = min(max_length, default_max_length(self.encoder))
        scalar = isinstance(questions, str)
        questions = [questions] if scalar else list(questions)
        contexts = [contexts] if isinstance(contexts, str) else list(contexts)
        if len(questions) != len(contexts):
            raise ValueError(f"got {len(questions)} questions but {len(contexts)} contexts")
        n = len(questions)
        examples = QAExamples(ids=[str(i) for i in range(n)], questions=questions, contexts=contexts,
                              answers=[[] for _ in range(n)], is_impossible=[False] * n, titles=[None] * n,
                              locations=[f"input {i + 1}" for i in range(n)], source="predict")
        features = make_qa_features(examples, self.tokenizer, max_length=max_length, doc_stride=doc_stride,
                                    max_question_length=max_question_length, training=False)
        starts, ends = self.window_logits(features, batch_size)
        decoded = decode_answers(examples, features, starts, ends, n_best=self.n_best,
                                 max_answer_length=self.max_answer_length, null_threshold=self.null_threshold,
                                 allow_no_answer=self.version_2)
        results = [{"answer": p["answer"], "start": p["start"], "end": p["end"], "score": p["score"]} for p in decoded]
        for p, result in zip(decoded, results):
            if p["start"] is None and p["score"] is not None:  # no answer: its own (CLS) score, as the export
                result["score"] = p["score"] + p["null_score_diff"]
        return results[0] if scalar else results

    # --- export -------------------------------------------------------------------------------

    def serving_signatures(self, max_length):
        """Export signatures (see `tfft.export_saved_model`):

            serving_default(question, context) -> answer (string), answer_start, answer_end
                (character offsets into the context; "" and -1 for no answer), score (start +
                end logit of the span; of CLS for no answer)
            serve_ids(input_ids, attention_mask, token_type_ids) -> start_logits, end_logits

        `serving_default` reads one window: a pair longer than `max_length` tokens is truncated
        (longest first), so an answer past the cut is not found; `predict_answers` and `tfft predict`
        read long contexts in overlapping windows instead.
        """
        from tfft.tasks.question_answering.serving import serving_signatures

        return serving_signatures(self, max_length)

    # --- saving -------------------------------------------------------------------------------

    def save_pretrained(self, save_dir):
        """Writes a transformers `*ForQuestionAnswering` checkpoint (config.json, model.safetensors,
        the tokenizer files); `AutoModelForQuestionAnswering` loads it with the same logits."""
        encoder = self.encoder
        hf_config = encoder.config_to_hf(encoder.config)
        hf_config.update(architectures=[hf_question_answering_class(encoder)], num_labels=2)
        return self.write_pretrained(save_dir, hf_config, self.hf_weight_table())

    peft_task_type = "QUESTION_ANS"
    peft_head_modules = ("qa_outputs",)

    def hf_weight_table(self):
        return self.per_token_head_weights(self.qa_outputs)

    def head_config(self):
        return {
            "max_answer_length": self.max_answer_length,
            "n_best": self.n_best,
            "version_2": self.version_2,
            "null_threshold": self.null_threshold,
            "question_first": self.question_first,
            "dropout": self.dropout_rate,
        }
