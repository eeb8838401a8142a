"""SQuAD EM / F1 on hand-made predictions; the expected numbers are worked out from the official formulas."""

import pytest

from tfft.tasks.question_answering.data import QAExamples
from tfft.tasks.question_answering.metrics import (exact_match, f1, format_qa_report, normalize_answer,
                                                   scalar_qa_metrics, squad_metrics)


def _examples(golds):
    """One example per list of gold texts ([] = unanswerable)."""
    n = len(golds)
    return QAExamples(ids=[f"q{i}" for i in range(n)], questions=["Q?"] * n, contexts=["C."] * n,
                      answers=[[(g, 0) for g in gold] for gold in golds], is_impossible=[not g for g in golds],
                      titles=[None] * n, locations=[f"q{i}" for i in range(n)])


@pytest.mark.parametrize("text, normalized", [
    ("The  Eiffel-Tower!", "eiffeltower"),             # lower, '-' and '!' removed, "the" dropped
    ("An apple a day.", "apple day"),
    ("Theatre of the Absurd", "theatre of absurd"),    # only whole-word articles
    ("  São Paulo\t(Brazil) ", "são paulo brazil"),
    ("215,000–230,000", "215000–230000"),              # the en dash is not ASCII punctuation
    ("A", ""),
    ("'the' Nile", "nile"),
])
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_exact_match():
    assert exact_match("the Eiffel Tower", "Eiffel tower.") == 1
    assert exact_match("Eiffel Tower in Paris", "Eiffel Tower") == 0
    assert exact_match("", "a") == 1  # both normalize to ""


@pytest.mark.parametrize("prediction, gold, expected", [
    ("the Eiffel tower", "Eiffel Tower in Paris", 2 * 1 * (2 / 4) / (1 + 2 / 4)),        # P 2/2, R 2/4: 2/3
    ("Paris, France", "Paris", 2 * (1 / 2) * 1 / (1 / 2 + 1)),                          # P 1/2, R 1/1: 2/3
    ("paris paris paris", "Paris", 2 * (1 / 3) * 1 / (1 / 3 + 1)),                      # one shared: P 1/3, R 1: 1/2
    ("21 million residents", "over 21 million", 2 / 3),                                 # P 2/3, R 2/3
    ("Lyon", "Paris", 0.0),
    ("", "", 1.0), ("the", "", 1.0), ("", "Paris", 0.0), ("Paris", "", 0.0),            # v2: no tokens on a side
])
def test_f1(prediction, gold, expected):
    assert f1(prediction, gold) == pytest.approx(expected)


def test_f1_v1_scores_no_shared_token_zero():
    assert f1("the", "The") == 1.0                       # v2: both have no tokens
    assert f1("the", "The", version_2=False) == 0.0      # v1.1: no shared token
    assert f1("", "", version_2=False) == 0.0
    assert f1("the Eiffel tower", "Eiffel Tower in Paris", version_2=False) == pytest.approx(2 / 3)


def test_squad_v1_takes_the_best_gold_answer():
    examples = _examples([["Gustave Eiffel", "the engineer Gustave Eiffel"],
                          ["Paris", "Paris, France", "the Champ de Mars in Paris"],
                          ["330 metres"], ["1554"]])
    predictions = {"q0": "engineer Gustave Eiffel", "q1": "in Paris", "q2": "330 metres (1,083 ft)", "q3": "1889"}
    # q0: equals the 2nd gold once "the" goes: EM 1, F1 1.
    # q1: EM 0; F1 vs "paris" 2/3 (P 1/2, R 1), vs "paris france" 1/2, vs "champ de mars in paris" 4/7: 2/3.
    # q2: "330 metres 1083 ft": EM 0, F1 P 2/4 R 2/2 = 2/3.  q3: 0, 0.
    metrics = squad_metrics(examples, predictions)
    assert metrics == {"exact": pytest.approx(100 * 1 / 4), "f1": pytest.approx(100 * (1 + 2 / 3 + 2 / 3 + 0) / 4),
                       "total": 4}


def _v2_case():
    examples = _examples([["Peking"], ["over 21 million", "21 million"], ["Northern Capital"], [], []])
    predictions = {"q0": "Peking", "q1": "21 million residents", "q2": "", "q3": "", "q4": "Tianjin"}
    return examples, predictions


def test_squad_v2_splits_answerable_and_unanswerable():
    examples, predictions = _v2_case()
    # q0: 1, 1.  q1: EM 0; F1 vs "over 21 million" 2/3, vs "21 million" P 2/3 R 1 = 4/5: 0.8.
    # q2: "" for an answerable question: 0, 0.  q3: "" for an unanswerable one: 1, 1.  q4: 0, 0.
    metrics = squad_metrics(examples, predictions, version_2=True)
    assert metrics == {
        "exact": pytest.approx(100 * 2 / 5), "f1": pytest.approx(100 * (1 + 0.8 + 1) / 5), "total": 5,
        "HasAns_exact": pytest.approx(100 * 1 / 3), "HasAns_f1": pytest.approx(100 * 1.8 / 3), "HasAns_total": 3,
        "NoAns_exact": pytest.approx(50.0), "NoAns_f1": pytest.approx(50.0), "NoAns_total": 2,
    }


def test_squad_v2_best_thresholds_from_null_score_diffs():
    examples, predictions = _v2_case()
    diffs = {"q0": -2.0, "q1": -1.0, "q2": 0.5, "q3": 1.0, "q4": 3.0}
    # find_best_thresh, F1: start at 2 (both unanswerable right); q0 +1 = 3; q1 +0.8 = 3.8 (best, at -1);
    # q2 +0 (its prediction scores 0); q3 +0 (predicts ""); q4 -1 (predicts "Tianjin") = 2.8.
    # Exact: q0 +1 = 3 (best, at -2), q1 +0, q2 +0, q3 +0, q4 -1.
    metrics = squad_metrics(examples, predictions, version_2=True, null_score_diffs=diffs)
    assert metrics["best_f1"] == pytest.approx(100 * 3.8 / 5) and metrics["best_f1_thresh"] == -1.0
    assert metrics["best_exact"] == pytest.approx(100 * 3 / 5) and metrics["best_exact_thresh"] == -2.0
    assert metrics["f1"] == pytest.approx(100 * 2.8 / 5)  # the main scores are those of the predictions as given


def test_squad_v2_drops_gold_answers_that_normalize_to_nothing():
    examples = _examples([["the", "Paris"], ["The"]])
    v2 = squad_metrics(examples, {"q0": "the", "q1": ""}, version_2=True)
    # q0: gold "the" is dropped, "the" vs "Paris": 0. q1: its only gold normalizes to nothing, so [""]: "" scores 1,
    # and it still counts as answerable (it has an answer).
    assert (v2["exact"], v2["HasAns_total"], "NoAns_total" in v2) == (pytest.approx(50.0), 2, False)
    v1 = squad_metrics(examples, {"q0": "the", "q1": ""})
    assert v1["exact"] == pytest.approx(100.0) and v1["f1"] == 0.0  # v1.1 keeps "the": EM 1, F1 0 (no shared token)


def test_metrics_from_decoded_predictions_use_the_best_spans_for_thresholds():
    examples = _examples([["Paris"], []])
    decoded = [
        {"id": "q0", "answer": "", "start": None, "end": None, "score": 4.0, "null_score_diff": 1.0,
         "n_best": [{"text": "Paris", "start": 0, "end": 5, "score": 4.0, "probability": 1.0}]},
        {"id": "q1", "answer": "", "start": None, "end": None, "score": 1.0, "null_score_diff": 5.0,
         "n_best": [{"text": "Lyon", "start": 0, "end": 4, "score": 1.0, "probability": 1.0}]},
    ]
    metrics = squad_metrics(examples, decoded, version_2=True)
    assert metrics["exact"] == pytest.approx(50.0)  # the answers as decoded: "" twice
    # Thresholds score the spans: start 1 (q1 right); q0 (1.0) answered "Paris": 2, best at 1.0; q1: -1.
    assert (metrics["best_exact"], metrics["best_exact_thresh"]) == (pytest.approx(100.0), 1.0)


def test_every_question_needs_a_prediction():
    examples, predictions = _v2_case()
    del predictions["q3"], predictions["q1"]
    with pytest.raises(ValueError, match=r"<memory>: no prediction for 2 of 5 questions: 'q1', 'q3'"):
        squad_metrics(examples, predictions, version_2=True)
    with pytest.raises(ValueError, match="the prediction for 'q0' must be a string, got NoneType"):
        squad_metrics(_examples([["Paris"]]), {"q0": None})


def test_v1_scoring_refuses_unanswerable_questions():
    examples, predictions = _v2_case()
    with pytest.raises(ValueError, match="2 questions are unanswerable; score them with version_2=True"):
        squad_metrics(examples, predictions)


def test_report_and_scalars():
    examples, predictions = _v2_case()
    metrics = squad_metrics(examples, predictions, version_2=True,
                            null_score_diffs={"q0": -2.0, "q1": -1.0, "q2": 0.5, "q3": 1.0, "q4": 3.0})
    report = format_qa_report(metrics)
    lines = report.splitlines()
    assert lines[0].split() == ["exact", "f1", "total"]
    assert lines[1].split() == ["all", "40.00", "56.00", "5"]
    assert lines[2].split() == ["HasAns", "33.33", "60.00", "3"]
    assert lines[3].split() == ["NoAns", "50.00", "50.00", "2"]
    assert "best f1 76.00 (null threshold -1.0000)" in lines[4]
    scalars = scalar_qa_metrics(metrics)
    assert scalars == {"exact": pytest.approx(40.0), "f1": pytest.approx(56.0), "HasAns_exact": pytest.approx(100 / 3),
                       "HasAns_f1": pytest.approx(60.0), "NoAns_exact": 50.0, "NoAns_f1": 50.0,
                       "best_exact": pytest.approx(60.0), "best_f1": pytest.approx(76.0)}
    assert all(type(v) is float for v in scalars.values())
    v1_report = format_qa_report(squad_metrics(_examples([["Paris"]]), {"q0": "Paris"})).splitlines()
    assert len(v1_report) == 2 and v1_report[1].split() == ["all", "100.00", "100.00", "1"]
