"""Entity-level metrics for token classification, equal to seqeval's, plus token accuracy and type confusion.

An entity counts as correct only when its type, first and last word all match a true entity.
Numbers equal seqeval's `classification_report` for the same `mode` and `scheme` (with
`zero_division=0`: an undefined ratio is 0.0, silently); the dict is JSON-ready.

    >>> m = entity_metrics([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-ORG"]])
    >>> m["micro_f1"], m["per_type"]["PER"]["f1"], m["type_confusion"]["LOC"]
    (0.5, 1.0, {'ORG': 1})
    >>> print(format_entity_report(m))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from tfft.metrics import _format_number, _table
from tfft.tasks.token_classification.schemes import MODES, extract_entities, scheme_name

MISSED = "missed"
__all__ = ["entity_metrics", "extract_entities", "format_entity_report", "scalar_entity_metrics"]


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _scores(correct: int, predicted: int, true: int) -> tuple[float, float, float]:
    precision, recall = _ratio(correct, predicted), _ratio(correct, true)
    # Written as seqeval writes it, so the floats agree to the last bit.
    return precision, recall, _ratio(2 * precision * recall, precision + recall)


def _check_shapes(true_tags: Sequence, pred_tags: Sequence) -> None:
    for name, sentences in (("true_tags", true_tags), ("pred_tags", pred_tags)):
        if isinstance(sentences, str) or any(not isinstance(s, (list, tuple)) for s in sentences):
            raise ValueError(f"{name} must be a list of sentences, each a list of tags")
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"true_tags has {len(true_tags)} sentences but pred_tags has {len(pred_tags)}")
    for number, (true, pred) in enumerate(zip(true_tags, pred_tags)):
        if len(true) != len(pred):
            raise ValueError(f"sentence {number} has {len(true)} true tags but {len(pred)} predicted")


def _entities(sentences: Sequence, mode: str, scheme: str, name: str) -> dict[tuple[int, int], str]:
    """Span (start, end) -> type; spans never overlap, so one type per span."""
    if not sentences:
        return {}
    try:
        found = extract_entities([list(s) for s in sentences], mode=mode, scheme=scheme)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    return {(start, end): entity_type for entity_type, start, end in found}


def entity_metrics(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]], *,
                   mode: str = "default", scheme: str = "IOB2") -> dict:
    """Entity-level precision, recall and F1 (micro, macro, weighted, per type), as seqeval.

    Args:
        true_tags, pred_tags: one list of tags per sentence, of equal lengths.
        mode: "default" (conlleval's lenient chunking, seqeval's default) or "strict" (only
            well-formed entities count, seqeval's `mode="strict"`); see `extract_entities`.
        scheme: "IOB2" (BIO), "IOBES" (BIOES) or "IO"; every tag must belong to it.
    Returns:
        `micro_precision`, `micro_recall`, `micro_f1`, the same for `macro_` (unweighted mean over
        types) and `weighted_` (weighted by support), `token_accuracy`, `num_true_entities`,
        `num_pred_entities`, `num_correct_entities`, `num_sentences`, `num_tokens`,
        `entity_types` (sorted, from both sides), `per_type` {type: precision, recall, f1,
        support}, `type_confusion` {true type: {type predicted for exactly that span, or
        "missed": count}}, `spurious` {predicted type: count of predicted entities whose span is
        no true entity's}, `mode`, `scheme`, `task`. A ratio with a zero denominator is 0.0 (also
        the macro average when there are no entities at all, where seqeval gives nan).

        >>> entity_metrics([["B-PER", "O"]], [["I-PER", "O"]], mode="strict")["micro_recall"]
        0.0
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    scheme = scheme_name(scheme)
    _check_shapes(true_tags, pred_tags)
    true = _entities(true_tags, mode, scheme, "true_tags")
    pred = _entities(pred_tags, mode, scheme, "pred_tags")
    types = sorted(set(true.values()) | set(pred.values()))
    true_count, pred_count = Counter(true.values()), Counter(pred.values())
    correct = Counter(t for span, t in true.items() if pred.get(span) == t)

    per_type = {}
    for entity_type in types:
        p, r, f = _scores(correct[entity_type], pred_count[entity_type], true_count[entity_type])
        per_type[entity_type] = {"precision": p, "recall": r, "f1": f, "support": true_count[entity_type]}
    micro = _scores(sum(correct.values()), len(pred), len(true))

    def average(key: str, weighted: bool) -> float:
        weights = [per_type[t]["support"] if weighted else 1 for t in types]
        return _ratio(sum(per_type[t][key] * w for t, w in zip(types, weights)), sum(weights))

    confusion: dict[str, Counter] = {t: Counter() for t in sorted(set(true.values()))}
    for span, entity_type in true.items():
        confusion[entity_type][pred.get(span, MISSED)] += 1
    spurious = Counter(t for span, t in pred.items() if span not in true)
    num_tokens = sum(len(sentence) for sentence in true_tags)
    right = sum(t == p for ts, ps in zip(true_tags, pred_tags) for t, p in zip(ts, ps))
    result = {
        "task": "token_classification",
        "mode": mode,
        "scheme": scheme,
        "num_sentences": len(true_tags),
        "num_tokens": num_tokens,
        "micro_precision": micro[0],
        "micro_recall": micro[1],
        "micro_f1": micro[2],
    }
    for prefix, weighted in (("macro", False), ("weighted", True)):
        for key in ("precision", "recall", "f1"):
            result[f"{prefix}_{key}"] = average(key, weighted)
    result.update({
        "token_accuracy": _ratio(right, num_tokens),
        "num_true_entities": len(true),
        "num_pred_entities": len(pred),
        "num_correct_entities": sum(correct.values()),
        "entity_types": types,
        "per_type": per_type,
        "type_confusion": {t: _sorted_counts(row) for t, row in confusion.items()},
        "spurious": _sorted_counts(spurious),
    })
    return result


def _sorted_counts(counts: Counter) -> dict[str, int]:
    """Types in sorted order, "missed" last."""
    return {key: counts[key] for key in sorted(counts, key=lambda k: (k == MISSED, k))}


def scalar_entity_metrics(metrics: dict) -> dict[str, float]:
    """The headline numbers with short names, for Keras epoch logs and checkpoint monitoring.

        >>> scalar_entity_metrics(entity_metrics(true_tags, pred_tags))
        {'f1': 0.81, 'precision': 0.8, 'recall': 0.82, 'macro_f1': 0.7, 'token_accuracy': 0.96}
    """
    return {
        "f1": metrics["micro_f1"],
        "precision": metrics["micro_precision"],
        "recall": metrics["micro_recall"],
        "macro_f1": metrics["macro_f1"],
        "token_accuracy": metrics["token_accuracy"],
    }


def _confusion_table(metrics: dict) -> list[str]:
    rows = metrics["type_confusion"]
    columns = sorted(set(rows) | {t for row in rows.values() for t in row if t != MISSED}
                     | set(metrics["spurious"])) + [MISSED]
    table = [*rows.items(), ("spurious", metrics["spurious"])]
    width = max(len(name) for name, _ in table)
    cells = [max(4, len(c), *(len(str(row.get(c, 0))) for _, row in table)) for c in columns]
    lines = [
        "Type confusion (rows: true type; columns: type predicted for exactly the same words, or missed;",
        "spurious: predicted entities whose words are no true entity's)",
        f"{'':>{width}}  " + "  ".join(f"{name:>{cell}}" for name, cell in zip(columns, cells)),
    ]
    for name, row in table:
        lines.append(f"{name:>{width}}  " + "  ".join(f"{row.get(c, 0):>{cell}d}" for c, cell in zip(columns, cells)))
    return lines


def format_entity_report(metrics: dict) -> str:
    """A readable report of `entity_metrics`: per-type table, averages, token accuracy, type confusion."""
    if metrics.get("task") != "token_classification":
        raise ValueError(f"not a token-classification metrics dict (task {metrics.get('task')!r}); "
                         "make it with entity_metrics")
    support = metrics["num_true_entities"]
    lines = [
        f"Entities ({metrics['mode']} mode, {metrics['scheme']}): {support} true, "
        f"{metrics['num_pred_entities']} predicted, {metrics['num_correct_entities']} correct",
        "",
    ]
    lines += _table(metrics["per_type"], metrics["entity_types"], [
        (f"{average} avg", metrics[f"{average}_precision"], metrics[f"{average}_recall"],
         metrics[f"{average}_f1"], support) for average in ("micro", "macro", "weighted")
    ])
    lines += [
        "",
        f"token accuracy {_format_number(metrics['token_accuracy'], 0)} over {metrics['num_tokens']} tokens "
        f"in {metrics['num_sentences']} sentences",
    ]
    if metrics["type_confusion"] or metrics["spurious"]:
        lines += [""] + _confusion_table(metrics)
    return "\n".join(lines)
