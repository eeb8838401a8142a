"""entity_metrics, its report and its scalars, on hand-computed cases (seqeval parity: test_seqeval_parity.py)."""

import json
import warnings

import pytest

from tfft.tasks.token_classification.metrics import (
    entity_metrics,
    extract_entities,
    format_entity_report,
    scalar_entity_metrics,
)
from tfft.tasks.token_classification.schemes import extract_entities as schemes_extract_entities

# seqeval's own documentation example: MISC is found one word too early, PER exactly.
TRUE = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
PRED = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]


def test_by_hand():
    m = entity_metrics(TRUE, PRED)
    assert m["per_type"] == {
        "MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }
    assert (m["micro_precision"], m["micro_recall"], m["micro_f1"]) == (0.5, 0.5, 0.5)
    assert (m["macro_f1"], m["weighted_f1"]) == (0.5, 0.5)
    assert m["token_accuracy"] == 0.8  # 8 of 10 tokens
    assert (m["num_true_entities"], m["num_pred_entities"], m["num_correct_entities"]) == (2, 2, 1)
    assert (m["num_sentences"], m["num_tokens"]) == (2, 10)
    assert m["entity_types"] == ["MISC", "PER"]
    assert m["type_confusion"] == {"MISC": {"missed": 1}, "PER": {"PER": 1}}
    assert m["spurious"] == {"MISC": 1}
    assert (m["mode"], m["scheme"], m["task"]) == ("default", "IOB2", "token_classification")
    json.dumps(m, allow_nan=False)


def test_unequal_types_and_supports():
    true = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"], ["B-PER", "O", "B-PER"]]
    pred = [["B-ORG", "I-ORG", "O", "B-LOC", "I-LOC", "O"], ["B-PER", "O", "B-LOC"]]
    m = entity_metrics(true, pred)
    # PER: 3 true, 1 predicted, 1 right. LOC: 1 true, 2 predicted, 0 right. ORG: 1 true, 1 predicted, 0 right.
    assert m["per_type"]["PER"] == pytest.approx({"precision": 1.0, "recall": 1 / 3, "f1": 0.5, "support": 3})
    assert m["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["micro_precision"] == pytest.approx(1 / 4) and m["micro_recall"] == pytest.approx(1 / 5)
    assert m["micro_f1"] == pytest.approx(2 * (1 / 4) * (1 / 5) / (1 / 4 + 1 / 5))
    assert m["macro_precision"] == pytest.approx(1 / 3) and m["macro_f1"] == pytest.approx(0.5 / 3)
    assert m["weighted_recall"] == pytest.approx((1 / 3 * 3) / 5) and m["weighted_f1"] == pytest.approx(1.5 / 5)
    assert m["type_confusion"] == {"LOC": {"missed": 1}, "ORG": {"missed": 1}, "PER": {"ORG": 1, "PER": 1, "LOC": 1}}
    assert m["spurious"] == {"LOC": 1}  # B-LOC I-LOC covers two words where the true LOC has one
    assert m["token_accuracy"] == pytest.approx(4 / 9)


def test_modes_differ_on_ill_formed_predictions():
    true, pred = [["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]]
    assert entity_metrics(true, pred)["micro_f1"] == 1.0  # conlleval reads I- after O as a beginning
    strict = entity_metrics(true, pred, mode="strict")
    assert (strict["micro_precision"], strict["micro_recall"], strict["micro_f1"]) == (0.0, 0.0, 0.0)
    assert strict["num_pred_entities"] == 0 and strict["type_confusion"] == {"PER": {"missed": 1}}
    assert strict["token_accuracy"] == pytest.approx(2 / 3)


def test_iobes():
    true = [["B-PER", "I-PER", "E-PER", "O", "S-LOC"]]
    pred = [["B-PER", "I-PER", "E-PER", "O", "B-LOC"]]
    assert entity_metrics(true, pred, scheme="IOBES")["micro_f1"] == 1.0
    strict = entity_metrics(true, pred, mode="strict", scheme="BIOES")
    assert strict["per_type"]["LOC"]["recall"] == 0.0 and strict["micro_precision"] == 1.0
    assert strict["scheme"] == "IOBES"


def test_no_entities_anywhere_is_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = entity_metrics([["O", "O"], []], [["O", "O"], []])
        assert m["token_accuracy"] == 1.0
        assert all(m[f"{a}_{k}"] == 0.0 for a in ("micro", "macro", "weighted") for k in ("precision", "recall", "f1"))
        assert m["per_type"] == {} and m["type_confusion"] == {} and m["spurious"] == {}
        only_predicted = entity_metrics([["O", "O"]], [["B-PER", "O"]])
        assert only_predicted["per_type"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        assert only_predicted["weighted_f1"] == 0.0 and only_predicted["spurious"] == {"PER": 1}
        empty = entity_metrics([], [])
        assert empty["token_accuracy"] == 0.0 and empty["num_tokens"] == 0
        format_entity_report(m)


def test_bad_input():
    with pytest.raises(ValueError, match=r"^true_tags: sentence 1, token 1: tag 'E-PER' is not an IOB2 tag"):
        entity_metrics([["O"], ["O", "E-PER"]], [["O"], ["O", "O"]])
    with pytest.raises(ValueError, match=r"^pred_tags: sentence 0, token 0: tag 'B-PER' is not an IO tag"):
        entity_metrics([["I-PER"]], [["B-PER"]], scheme="IO")
    with pytest.raises(ValueError, match="true_tags has 2 sentences but pred_tags has 1"):
        entity_metrics([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="sentence 1 has 2 true tags but 1 predicted"):
        entity_metrics([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="true_tags must be a list of sentences"):
        entity_metrics(["O", "B-PER"], ["O", "B-PER"])
    with pytest.raises(ValueError, match="mode must be one of"):
        entity_metrics(TRUE, PRED, mode="lenient")
    with pytest.raises(ValueError, match="unknown tag scheme"):
        entity_metrics(TRUE, PRED, scheme="IOB1")


def test_report():
    m = entity_metrics([["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"]],
                       [["B-ORG", "I-ORG", "O", "B-LOC", "I-LOC", "O"]])
    report = format_entity_report(m)
    lines = report.splitlines()
    assert lines[0] == "Entities (default mode, IOB2): 3 true, 2 predicted, 0 correct"
    assert any(line.split() == ["PER", "0.0000", "0.0000", "0.0000", "1"] for line in lines)
    assert any(line.split() == ["micro", "avg", "0.0000", "0.0000", "0.0000", "3"] for line in lines)
    assert any(line.split()[:2] == ["weighted", "avg"] for line in lines)
    assert "token accuracy 0.3333 over 6 tokens in 1 sentences" in report
    header = lines.index(next(line for line in lines if line.startswith("Type confusion"))) + 2
    assert lines[header].split() == ["LOC", "ORG", "PER", "missed"]
    rows = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in lines[header + 1:]}
    assert rows == {"LOC": [0, 0, 0, 1], "ORG": [0, 0, 0, 1], "PER": [0, 1, 0, 0], "spurious": [1, 0, 0, 0]}
    with pytest.raises(ValueError, match="not a token-classification metrics dict"):
        format_entity_report({"task": "classification"})


def test_scalars_for_epoch_logs():
    m = entity_metrics(TRUE, PRED)
    assert scalar_entity_metrics(m) == {"f1": 0.5, "precision": 0.5, "recall": 0.5, "macro_f1": 0.5,
                                        "token_accuracy": 0.8}


def test_extract_entities_is_the_schemes_function():
    assert extract_entities is schemes_extract_entities
    assert extract_entities(TRUE) == [("MISC", 3, 5), ("PER", 8, 9)]  # sentence 2 starts at 8: 7 tokens + "O"
