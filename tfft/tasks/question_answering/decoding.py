"""`decode_answers`: start / end logits of every window back to answer text and character spans, as
Hugging Face's `postprocess_qa_predictions` does; `best_null_threshold` tunes the SQuAD v2 no-answer cut."""

from __future__ import annotations

import math

import numpy as np

from tfft.tasks.question_answering.data import QAExamples
from tfft.tasks.question_answering.features import QAFeatures
from tfft.tasks.question_answering.metrics import best_threshold, f1, gold_texts


def _window_logits(logits, feature: int, length: int, name: str) -> np.ndarray:
    row = np.asarray(logits[feature], np.float64).reshape(-1)
    if len(row) < length:
        raise ValueError(f"{name}[{feature}] has {len(row)} values but window {feature} has {length} tokens")
    return row[:length]


def decode_answers(examples: QAExamples, features: QAFeatures, start_logits, end_logits, *, n_best: int = 20,
                   max_answer_length: int = 30, null_threshold: float = 0.0,
                   allow_no_answer: bool = False) -> list[dict]:
    """The best answer span of each example, over all its windows.

    `start_logits` / `end_logits`: per window, the model's scores for every token, as a
    [windows, length] array of right-padded batches (`pad_features`) or a list of 1-D arrays;
    values past a window's own length are ignored. In each window the `n_best` highest start and
    end tokens are paired; a pair is a candidate when both are context tokens, end >= start and it
    spans at most `max_answer_length` tokens. Its score is start + end logit; the same character
    span from overlapping windows counts once, with its best score.

    Returns one dict per example: "id", "answer" (the text, "" for no answer), "start", "end" (its
    character span in the context; None for no answer), "score" (of the best span), "null_score_diff"
    (the lowest CLS start + end score over the windows minus the best span's score) and "n_best"
    (up to `n_best` spans, best first: "text", "start", "end", "score", "probability" = softmax over
    them). With `allow_no_answer` (SQuAD v2) the answer is "" when null_score_diff > null_threshold.
    An example with no candidate span gets answer "", and None for score and null_score_diff.

    Example:
        predictions = decode_answers(dev, features, start_logits, end_logits, allow_no_answer=True)
        predictions[0]["answer"], predictions[0]["start"]      # ("France", 159)
    """
    if len(start_logits) != len(features) or len(end_logits) != len(features):
        raise ValueError(f"got {len(start_logits)} start and {len(end_logits)} end logit rows for "
                         f"{len(features)} windows")
    windows = [[] for _ in range(len(examples))]
    for feature, example in enumerate(features.example_index):
        if not 0 <= example < len(examples):
            raise ValueError(f"window {feature} belongs to example {example}, but there are {len(examples)} "
                             "examples: were the features made from these examples?")
        windows[example].append(feature)
    predictions = []
    for example, feature_ids in enumerate(windows):
        if not feature_ids:
            raise ValueError(f"{examples.where(example)}: no window; were the features made from these examples?")
        spans, null_score = {}, math.inf
        for feature in feature_ids:
            offsets = features.offsets[feature]
            starts = _window_logits(start_logits, feature, len(offsets), "start_logits")
            ends = _window_logits(end_logits, feature, len(offsets), "end_logits")
            cls = features.cls_index[feature]
            null_score = min(null_score, starts[cls] + ends[cls])
            top_ends = [e for e in np.argsort(-ends, kind="stable")[:n_best] if offsets[e, 0] >= 0]
            for s in np.argsort(-starts, kind="stable")[:n_best]:
                if offsets[s, 0] < 0:
                    continue
                for e in top_ends:
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    span = (int(offsets[s, 0]), int(offsets[e, 1]))
                    if span[1] <= span[0]:
                        continue  # a zero-width token (SentencePiece's lone "▁") is no answer
                    score = float(starts[s] + ends[e])
                    if score > spans.get(span, -math.inf):
                        spans[span] = score
        predictions.append(_prediction(examples, example, spans, float(null_score), n_best, null_threshold,
                                       allow_no_answer))
    return predictions


def _prediction(examples, example, spans, null_score, n_best, null_threshold, allow_no_answer) -> dict:
    context = examples.contexts[example]
    ranked = sorted(spans.items(), key=lambda item: -item[1])[:n_best]
    scores = np.array([score for _, score in ranked])
    probabilities = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum() if ranked else []
    best = [{"text": context[start:end], "start": start, "end": end, "score": score, "probability": float(p)}
            for ((start, end), score), p in zip(ranked, probabilities)]
    prediction = {"id": examples.ids[example], "answer": "", "start": None, "end": None, "score": None,
                  "null_score_diff": None, "n_best": best}
    if best:
        prediction["score"] = best[0]["score"]
        prediction["null_score_diff"] = null_score - best[0]["score"]
        if not (allow_no_answer and prediction["null_score_diff"] > null_threshold):
            prediction.update(answer=best[0]["text"], start=best[0]["start"], end=best[0]["end"])
    return prediction


def best_null_threshold(examples: QAExamples, predictions: list[dict]) -> tuple[float, float]:
    """The `null_threshold` maximising SQuAD v2 F1 on these (dev) examples, and that F1 (0..100).

    The official evaluation's `find_best_thresh` over each question's null_score_diff, scoring
    its best span (n_best[0], whatever the answer decoded with the current threshold is).

    Example:
        threshold, best_f1 = best_null_threshold(dev, decode_answers(dev, features, start, end))
        final = decode_answers(test, test_features, s, e, allow_no_answer=True, null_threshold=threshold)
    """
    by_id = {p["id"]: p for p in predictions}
    missing = [id for id in examples.ids if id not in by_id]
    if missing:
        raise ValueError(f"{examples.source}: no prediction for {len(missing)} questions, e.g. {missing[0]!r}")
    scores, null, has_answer, answered = {}, {}, {}, {}
    for id, gold in zip(examples.ids, examples.answers):
        span = by_id[id]["n_best"][0]["text"] if by_id[id]["n_best"] else ""
        scores[id] = max(f1(span, g) for g in gold_texts(gold))
        null[id], has_answer[id], answered[id] = by_id[id]["null_score_diff"], bool(gold), bool(span)
    return best_threshold(scores, null, has_answer, answered)
