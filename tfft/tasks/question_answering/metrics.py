"""SQuAD exact match and F1, reproducing the official evaluation scripts (`evaluate-v1.1.py`,
`evaluate-v2.0.py`) number for number, with the v2 HasAns / NoAns split and threshold search.

    >>> f1("the Eiffel tower", "Eiffel Tower in Paris")      # precision 2/2, recall 2/4
    0.6666666666666666
    >>> m = squad_metrics(dev, {"5733be28": "Paris", ...}, version_2=True)
    >>> m["exact"], m["f1"], m["HasAns_f1"], m["NoAns_exact"]
"""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Mapping, Sequence

from tfft.tasks.question_answering.data import QAExamples

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)
_NOT_SCALAR = ("total", "HasAns_total", "NoAns_total", "best_exact_thresh", "best_f1_thresh")


def normalize_answer(text: str) -> str:
    """Lower case, drop ASCII punctuation, the articles a/an/the and extra whitespace (official SQuAD).

    Example:
        normalize_answer("The  Eiffel-Tower!")     # "eiffeltower"
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> int:
    """1 when prediction and gold answer normalize to the same text, else 0."""
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str, *, version_2: bool = True) -> float:
    """Token-overlap F1 of the normalized texts.

    In v2 (`version_2=True`), when either side normalizes to no tokens F1 is 1 if both do, else 0
    (so "" scores 1 against an unanswerable question); v1.1 scores any case without a shared token 0.

    Example:
        f1("the Eiffel tower", "Eiffel Tower in Paris")   # 2 shared of 2 and 4 tokens: 2/3
    """
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if version_2 and (not gold_tokens or not pred_tokens):
        return float(gold_tokens == pred_tokens)
    same = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_texts(answers: Sequence[tuple[str, int]], *, version_2: bool = True) -> list[str]:
    """The gold texts scored against: in v2 those that normalize to something, or [""] when none does."""
    texts = [text for text, _ in answers]
    if not version_2:
        return texts
    return [t for t in texts if normalize_answer(t)] or [""]


def _predicted(examples: QAExamples, predictions) -> tuple[dict[str, str], dict[str, str] | None, dict | None]:
    """(answers, best span texts, null score diffs) by id, from a {id: text} mapping or `decode_answers` dicts."""
    if isinstance(predictions, Mapping):
        answers, spans, diffs = dict(predictions), None, None
    else:
        answers = {p["id"]: p["answer"] for p in predictions}
        spans = {p["id"]: (p["n_best"][0]["text"] if p.get("n_best") else "") for p in predictions}
        diffs = {p["id"]: p.get("null_score_diff") for p in predictions}
    missing = [id for id in examples.ids if id not in answers]
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ValueError(f"{examples.source}: no prediction for {len(missing)} of {len(examples)} questions: {shown}")
    for id, text in answers.items():
        if not isinstance(text, str):
            raise ValueError(f"the prediction for {id!r} must be a string, got {type(text).__name__}")
    return answers, spans, diffs


def _percentages(exact: dict, f1s: dict, ids: list[str]) -> dict:
    return {"exact": 100.0 * sum(exact[i] for i in ids) / len(ids),
            "f1": 100.0 * sum(f1s[i] for i in ids) / len(ids), "total": len(ids)}


def best_threshold(scores: Mapping[str, float], null_scores: Mapping[str, float | None],
                   has_answer: Mapping[str, bool], answered: Mapping[str, bool]) -> tuple[float, float]:
    """The official v2 `find_best_thresh`: the threshold on `null_scores` (predict no answer above
    it) maximising the mean of `scores` (each question's score when answered), and that mean in %.

    `answered[id]` says whether the prediction kept below the threshold is non-empty. A null score
    of None counts as +inf (never answered).
    """
    null = {id: math.inf if value is None else float(value) for id, value in null_scores.items()}
    score = best = float(sum(1 for id in scores if not has_answer[id]))
    # Official starts at 0.0, meant as "below every no-answer probability"; null score *diffs* can be
    # negative, so start below the lowest one instead, keeping that meaning.
    lowest = min(null.values(), default=0.0)
    threshold = 0.0 if lowest > 0.0 else lowest - 1.0
    for id in sorted(null, key=null.get):
        if id not in scores:
            continue
        score += scores[id] if has_answer[id] else (-1 if answered[id] else 0)
        if score > best:
            best, threshold = score, null[id]
    return threshold, 100.0 * best / len(scores)


def squad_metrics(examples: QAExamples, predictions, *, version_2: bool = False,
                  null_score_diffs: Mapping[str, float] | None = None) -> dict:
    """The official SQuAD scores (percentages) of `predictions` on `examples`.

    `predictions` is {id: answer text} or the list `decode_answers` returns; every example needs
    one. v1.1 (`version_2=False`) returns {"exact", "f1", "total"}, each question scored by its best
    gold answer. v2 adds "HasAns_exact/f1/total" and "NoAns_exact/f1/total" (an unanswerable
    question's only gold answer is ""), and "best_exact", "best_exact_thresh", "best_f1",
    "best_f1_thresh" when null score diffs are known (`null_score_diffs`, or from `decode_answers`
    output, where the threshold search scores each question's best span).

    Example:
        squad_metrics(dev, decode_answers(dev, features, start, end, allow_no_answer=True), version_2=True)
    """
    answers, spans, diffs = _predicted(examples, predictions)
    if null_score_diffs is not None:
        diffs, spans = dict(null_score_diffs), None
    if not version_2 and any(not a for a in examples.answers):
        count = sum(1 for a in examples.answers if not a)
        raise ValueError(f"{examples.source}: {count} questions are unanswerable; score them with version_2=True")
    exact, f1s, span_exact, span_f1 = {}, {}, {}, {}
    for id, gold in zip(examples.ids, examples.answers):
        golds = gold_texts(gold, version_2=version_2)
        exact[id] = max(exact_match(answers[id], g) for g in golds)
        f1s[id] = max(f1(answers[id], g, version_2=version_2) for g in golds)
        if spans is not None:
            span_exact[id] = max(exact_match(spans[id], g) for g in golds)
            span_f1[id] = max(f1(spans[id], g, version_2=version_2) for g in golds)
    metrics = _percentages(exact, f1s, list(examples.ids))
    if not version_2:
        return metrics
    has_answer = {id: bool(a) for id, a in zip(examples.ids, examples.answers)}
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        ids = [id for id in examples.ids if has_answer[id] == wanted]
        if ids:
            metrics.update({f"{name}_{key}": value for key, value in _percentages(exact, f1s, ids).items()})
    if diffs is not None:
        missing = [id for id in examples.ids if id not in diffs]
        if missing:
            raise ValueError(f"no null score diff for {len(missing)} questions, e.g. {missing[0]!r}")
        raw_exact, raw_f1, raw_text = (span_exact, span_f1, spans) if spans is not None else (exact, f1s, answers)
        answered = {id: bool(raw_text[id]) for id in examples.ids}
        null = {id: diffs[id] for id in examples.ids}
        metrics["best_exact_thresh"], metrics["best_exact"] = best_threshold(raw_exact, null, has_answer, answered)
        metrics["best_f1_thresh"], metrics["best_f1"] = best_threshold(raw_f1, null, has_answer, answered)
    return metrics


def scalar_qa_metrics(metrics: Mapping) -> dict[str, float]:
    """The scores of a `squad_metrics` dict as floats for epoch logs (`exact`, `f1`, `HasAns_f1`, ...);
    counts and thresholds are left out."""
    return {key: float(value) for key, value in metrics.items()
            if key not in _NOT_SCALAR and isinstance(value, (int, float)) and not isinstance(value, bool)}


def format_qa_report(metrics: Mapping) -> str:
    """A small table of a `squad_metrics` dict: exact / F1 / count for all, HasAns and NoAns questions.

    Example:
        print(format_qa_report(squad_metrics(dev, predictions, version_2=True)))
    """
    lines = [f"{'':<8} {'exact':>9} {'f1':>9} {'total':>7}"]
    for name, prefix in (("all", ""), ("HasAns", "HasAns_"), ("NoAns", "NoAns_")):
        if f"{prefix}exact" in metrics:
            lines.append(f"{name:<8} {metrics[prefix + 'exact']:>9.2f} {metrics[prefix + 'f1']:>9.2f} "
                         f"{metrics[prefix + 'total']:>7d}")
    if "best_f1" in metrics:
        lines.append(f"best exact {metrics['best_exact']:.2f} (null threshold {metrics['best_exact_thresh']:.4f}), "
                     f"best f1 {metrics['best_f1']:.2f} (null threshold {metrics['best_f1_thresh']:.4f})")
    return "\n".join(lines)
