"""tfft.metrics against hand-computed values (and scipy / sklearn where installed)."""

import json

import numpy as np
import pytest

from tfft.metrics import (
    _ranks,
    classification_metrics,
    format_report,
    multilabel_metrics,
    regression_metrics,
    save_metrics,
    scalar_metrics,
)

Y_TRUE = [0, 0, 1, 1, 2, 2]
Y_PRED = [0, 1, 1, 1, 2, 0]
NAMES = ["negative", "neutral", "positive"]


def test_classification_by_hand():
    m = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    # Confusion rows are true labels: negative -> (neg, neu); neutral -> neu twice; positive -> (pos, neg).
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["negative"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_class"]["neutral"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["per_class"]["positive"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["macro_precision"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert m["micro_f1"] == pytest.approx(4 / 6)  # Equals accuracy for single-label data.
    assert m["weighted_f1"] == pytest.approx(m["macro_f1"])  # Equal supports.
    json.dumps(m, allow_nan=False)


def test_classification_takes_scores_and_handles_absent_classes():
    scores = np.eye(4)[[0, 1, 1, 0]] * 3.0  # Class 3 is never true nor predicted.
    m = classification_metrics([0, 1, 0, 0], scores, ["a", "b", "c", "d"])
    assert m["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["confusion_matrix"][0] == [2, 1, 0, 0]
    assert classification_metrics([1, 0], [1, 1])["label_names"] == ["0", "1"]


def test_bad_labels_are_named():
    with pytest.raises(ValueError, match="class index 3"):
        classification_metrics([0, 3], [0, 1], NAMES)
    with pytest.raises(ValueError, match="2 examples but y_pred has 3"):
        classification_metrics([0, 1], [0, 1, 1], NAMES)
    with pytest.raises(ValueError, match="2 label names for 3 label columns"):
        multilabel_metrics(np.zeros((2, 3)), np.zeros((2, 3)), ["a", "b"])


def test_multilabel_by_hand():
    y_true = [[1, 0, 1], [0, 1, 0], [1, 1, 0]]
    probs = [[0.9, 0.2, 0.4], [0.1, 0.7, 0.6], [0.6, 0.4, 0.1]]
    m = multilabel_metrics(y_true, probs, ["a", "b", "c"])  # Predicted: [1,0,0], [0,1,1], [1,0,0].
    assert m["per_label"]["a"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2})
    assert m["per_label"]["b"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert m["per_label"]["c"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})
    assert (m["micro_precision"], m["micro_recall"]) == pytest.approx((3 / 4, 3 / 5))
    assert m["micro_f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["subset_accuracy"] == 0.0
    assert multilabel_metrics(y_true, probs, threshold=0.35)["subset_accuracy"] == pytest.approx(2 / 3)


def test_regression_by_hand():
    m = regression_metrics([1, 2, 3, 4], [[1], [3], [2], [5]])
    assert (m["mse"], m["mae"], m["rmse"]) == pytest.approx((0.75, 0.75, np.sqrt(0.75)))
    assert m["pearson"] == pytest.approx(np.corrcoef([1, 2, 3, 4], [1, 3, 2, 5])[0, 1])
    assert m["spearman"] == pytest.approx(0.8)  # Ranks (1,3,2,4) vs (1,2,3,4): 1 - 6*2/(4*15).
    assert _ranks(np.array([10.0, 20.0, 20.0, 5.0])).tolist() == [2.0, 3.5, 3.5, 1.0]
    constant = regression_metrics([1, 2, 3], [2, 2, 2])
    assert constant["pearson"] is None and constant["spearman"] is None
    json.dumps(constant, allow_nan=False)


def test_correlations_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=50)
    y_pred = np.round(y_true + rng.normal(size=50), 1)  # Rounding makes ties.
    m = regression_metrics(y_true, y_pred)
    assert m["pearson"] == pytest.approx(stats.pearsonr(y_true, y_pred)[0], abs=1e-12)
    assert m["spearman"] == pytest.approx(stats.spearmanr(y_true, y_pred)[0], abs=1e-12)


def test_classification_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    m = classification_metrics(y_true, y_pred, list("abcd"))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="weighted"))
    assert m["confusion_matrix"] == sk.confusion_matrix(y_true, y_pred).tolist()


def test_reports_read_like_a_table(tmp_path):
    report = format_report(classification_metrics(Y_TRUE, Y_PRED, NAMES))
    lines = report.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[2].split() == ["negative", "0.5000", "0.5000", "0.5000", "2"]
    assert any(line.split()[:2] == ["macro", "avg"] for line in lines)
    assert "Confusion matrix (rows: true label, columns: predicted)" in report
    assert lines[-1].split() == ["positive", "1", "0", "1"]
    assert "micro avg" in format_report(multilabel_metrics([[1, 0]], [[0.9, 0.1]], ["x", "y"]))
    assert "n/a" in format_report(regression_metrics([1, 2], [3, 3]))  # Undefined correlation.
    with pytest.raises(ValueError, match="not a tfft metrics dict"):
        format_report({"accuracy": 1.0})

    metrics = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    save_metrics(metrics, tmp_path / "run" / "metrics.json")
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == metrics
    assert set(scalar_metrics(metrics)) == {
        "accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "micro_f1",
        "weighted_f1",
    }
