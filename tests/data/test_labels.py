import numpy as np
import pytest

from tests.data.conftest import DATA
from tfft.data import LabelVocab, read_examples
from tfft.errors import DataError


def test_vocab_from_training_labels_is_sorted_and_encodes_ids():
    train = read_examples(DATA / "reviews.jsonl")
    vocab = LabelVocab.from_examples(train)
    assert vocab.names == ("negative", "positive") and vocab.num_labels == 2
    ids = vocab.encode(train)
    assert ids.dtype == np.int32 and ids.shape == (24,)
    assert [vocab.names[i] for i in ids] == train.labels


def test_int_labels_stay_ints_and_sort_numerically():
    vocab = LabelVocab.from_examples([10, 2, 2, 0])
    assert vocab.names == (0, 2, 10)
    np.testing.assert_array_equal(vocab.encode([2, 10, 0]), [1, 2, 0])


def test_vocab_from_config_keeps_the_given_order():
    vocab = LabelVocab("single_label", ["positive", "negative"])
    np.testing.assert_array_equal(vocab.encode(["negative", "positive"]), [1, 0])


def test_unseen_dev_label_names_file_line_column_and_label():
    vocab = LabelVocab.from_examples(read_examples(DATA / "reviews.jsonl"))
    dev = read_examples(DATA / "dev_unseen_label.jsonl")
    with pytest.raises(DataError) as info:
        vocab.encode(dev)
    message = str(info.value)
    assert f"{DATA / 'dev_unseen_label.jsonl'}, line 3, column 'label'" in message
    assert "'neutral'" in message and "'negative', 'positive'" in message


def test_int_label_against_string_names_gets_a_hint():
    with pytest.raises(DataError, match=r"labels\[1\]: label 1 is not one of .*the int 1 is not the str name"):
        LabelVocab("single_label", ["0", "1"]).encode(["0", 1])


def test_bad_class_labels():
    with pytest.raises(DataError, match=r"labels\[1\]: label 0\.5 is a float"):
        LabelVocab.from_examples(["a", 0.5])
    with pytest.raises(DataError, match=r"labels\[2\]: label 3 is int but earlier labels are str \(first at labels\[0"):
        LabelVocab.from_examples(["a", "b", 3])
    with pytest.raises(DataError, match=r"labels\[0\]: label \['a', 'b'\] is a list; use problem_type='multi_label'"):
        LabelVocab.from_examples([["a", "b"]])
    with pytest.raises(DataError, match="label is empty"):
        LabelVocab.from_examples(["a", " "])
    with pytest.raises(DataError, match="label names repeat 'a'"):
        LabelVocab("single_label", ["a", "b", "a"])
    with pytest.raises(DataError, match="problem_type must be one of"):
        LabelVocab("ranking", ["a"])


def test_multi_label_jsonl_lists_and_csv_joined_strings_encode_the_same():
    from_jsonl = read_examples(DATA / "reviews_multilabel.jsonl")
    from_csv = read_examples(DATA / "reviews_multilabel.csv")
    vocab = LabelVocab.from_examples(from_jsonl, problem_type="multi_label")
    assert vocab.names == ("long", "mentions_film", "negative", "positive")
    assert LabelVocab.from_examples(from_csv, problem_type="multi_label") == vocab
    hot = vocab.encode(from_jsonl)
    assert hot.dtype == np.float32 and hot.shape == (24, 4)
    np.testing.assert_array_equal(hot, vocab.encode(from_csv))
    for row, labels in zip(hot, from_jsonl.labels):
        assert {vocab.names[i] for i in np.flatnonzero(row)} == set(labels)


def test_multi_label_empty_row_and_unknown_class():
    vocab = LabelVocab("multi_label", ["a", "b", "c"], separator=";")
    np.testing.assert_array_equal(vocab.encode(["", "c;a", ["b"], "b"]),
                                  [[0, 0, 0], [1, 0, 1], [0, 1, 0], [0, 1, 0]])
    with pytest.raises(DataError, match=r"labels\[0\]: label 'd' is not one of the 3 known labels"):
        vocab.encode(["a;d"])


def test_regression_encodes_floats_and_rejects_non_numbers():
    train = read_examples(DATA / "reviews_regression.jsonl")
    vocab = LabelVocab.from_examples(train, problem_type="regression")
    assert vocab.names == () and vocab.num_labels == 1
    values = vocab.encode(train)
    assert values.dtype == np.float32 and values.shape == (24,)
    np.testing.assert_allclose(values, train.labels)
    with pytest.raises(DataError, match=r"labels\[1\]: regression label 'high' is not a number"):
        vocab.encode([1.5, "high"])
    with pytest.raises(DataError, match="not finite"):
        vocab.encode([float("nan")])


def test_json_round_trip_keeps_types():
    for vocab in (LabelVocab("single_label", [0, 1, 5]), LabelVocab("multi_label", ["x", "y"], separator=","),
                  LabelVocab("regression")):
        assert LabelVocab.from_json(vocab.to_json()) == vocab
    with pytest.raises(DataError, match="unknown keys"):
        LabelVocab.from_json('{"problem_type": "single_label", "names": ["a"], "labels": []}')


def test_examples_without_labels_cannot_be_encoded():
    unlabelled = read_examples(DATA / "reviews.jsonl", label_column=None)
    with pytest.raises(DataError, match=r"reviews\.jsonl: no labels were read"):
        LabelVocab("single_label", ["negative", "positive"]).encode(unlabelled)
