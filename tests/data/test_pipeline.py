import numpy as np
import pytest
import tensorflow as tf

from tests.data.conftest import DATA, batch_rows, unpadded_rows
from tfft.data import LabelVocab, make_dataset, read_examples
from tfft.data.pipeline import auto_bucket_boundaries, count_batches
from tfft.errors import DataError

KEYS = {"input_ids", "attention_mask", "token_type_ids"}


@pytest.fixture(scope="module")
def reviews():
    return read_examples(DATA / "reviews.jsonl")


@pytest.fixture(scope="module")
def vocab(reviews):
    return LabelVocab.from_examples(reviews)


def epoch(ds):
    """One pass: a list of (features as numpy, labels as numpy) batches."""
    return [({k: v.numpy() for k, v in f.items()}, y.numpy()) for f, y in ds]


def row_order(batches, reference):
    """Index in `reference` of every row the batches yield, in order."""
    index = {row: i for i, row in enumerate(reference)}
    return [index[row] for f, _ in batches for row in batch_rows({k: tf.constant(v) for k, v in f.items()})]


def padding(batches):
    return sum(int((f["attention_mask"] == 0).sum()) for f, _ in batches)


def test_unshuffled_batches_keep_file_order_and_pad_to_their_longest_row(reviews, vocab, tokenizer):
    ds = make_dataset(reviews, tokenizer, vocab, batch_size=5, max_length=128)
    reference = unpadded_rows(tokenizer, reviews.texts, max_length=128)
    batches = epoch(ds)
    assert [len(y) for _, y in batches] == [5, 5, 5, 5, 4]
    start = 0
    for features, labels in batches:
        assert set(features) == KEYS and all(v.dtype == np.int32 for v in features.values())
        expected = reference[start:start + len(labels)]
        assert features["input_ids"].shape[1] == max(map(len, expected)) < 128  # never padded to max_length
        assert batch_rows({k: tf.constant(v) for k, v in features.items()}) == expected
        np.testing.assert_array_equal(labels, vocab.encode(reviews.labels[start:start + len(labels)]))
        pads = features["attention_mask"] == 0
        assert (features["input_ids"][pads] == tokenizer.pad_token_id).all()
        assert (features["token_type_ids"][pads] == 0).all()
        start += len(labels)
    assert start == len(reviews)


def test_max_length_truncates(reviews, vocab, tokenizer):
    batches = epoch(make_dataset(reviews, tokenizer, vocab, batch_size=8, max_length=16))
    assert max(f["input_ids"].shape[1] for f, _ in batches) == 16
    assert row_order(batches, unpadded_rows(tokenizer, reviews.texts, max_length=16)) == list(range(24))


def test_sentence_pairs_carry_token_types(tokenizer):
    pairs = read_examples(DATA / "review_pairs.jsonl", text_pair_column="text_pair")
    vocab = LabelVocab.from_examples(pairs)
    (features, labels), *_ = epoch(make_dataset(pairs, tokenizer, vocab, batch_size=12))
    reference = tokenizer(pairs.texts, pairs.text_pairs)
    for key in KEYS:
        np.testing.assert_array_equal(features[key], reference[key])
    assert features["token_type_ids"].max() == 1
    np.testing.assert_array_equal(labels, vocab.encode(pairs))


def test_seeded_shuffle_is_deterministic_and_reshuffles_each_epoch(reviews, vocab, tokenizer):
    reference = unpadded_rows(tokenizer, reviews.texts)

    def orders(seed):
        ds = make_dataset(reviews, tokenizer, vocab, batch_size=4, shuffle=True, seed=seed)
        return [row_order(epoch(ds), reference) for _ in range(2)]

    first, again, other = orders(7), orders(7), orders(8)
    assert first == again
    assert first[0] != first[1]                  # a new order every epoch
    assert first[0] != other[0]                  # another seed, another order
    assert sorted(first[0]) == list(range(24))   # every row exactly once


def test_shuffled_labels_stay_with_their_rows(reviews, vocab, tokenizer):
    reference = unpadded_rows(tokenizer, reviews.texts)
    targets = vocab.encode(reviews)
    batches = epoch(make_dataset(reviews, tokenizer, vocab, batch_size=4, shuffle=True, seed=3,
                                 bucket_boundaries="auto"))
    order = row_order(batches, reference)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), targets[order])


def test_bucketing_reduces_padding_and_still_pads_to_each_batch_longest(reviews, vocab, tokenizer):
    lengths = np.array([len(r) for r in unpadded_rows(tokenizer, reviews.texts)])
    boundaries = auto_bucket_boundaries(lengths, batch_size=2)
    assert len(boundaries) >= 2
    for seed in (0, 1, 2):
        plain = epoch(make_dataset(reviews, tokenizer, vocab, batch_size=2, shuffle=True, seed=seed))
        bucketed = epoch(make_dataset(reviews, tokenizer, vocab, batch_size=2, shuffle=True, seed=seed,
                                      bucket_boundaries="auto"))
        assert padding(bucketed) < padding(plain)
        for features, _ in bucketed:
            row_lengths = features["attention_mask"].sum(axis=1)
            assert features["input_ids"].shape[1] == row_lengths.max()
            buckets = np.searchsorted(boundaries, row_lengths, side="right")
            assert len(set(buckets)) == 1  # a batch never mixes buckets


@pytest.mark.parametrize("drop_remainder", [False, True])
@pytest.mark.parametrize("buckets", [None, "auto", [30, 50]])
def test_cardinality_is_the_number_of_batches(reviews, vocab, tokenizer, buckets, drop_remainder):
    ds = make_dataset(reviews, tokenizer, vocab, batch_size=3, shuffle=True, bucket_boundaries=buckets,
                      drop_remainder=drop_remainder)
    batches = epoch(ds)
    assert int(ds.cardinality()) == len(batches)
    if drop_remainder:
        assert all(len(y) == 3 for _, y in batches)
    else:
        assert sum(len(y) for _, y in batches) == 24


def test_count_batches_per_bucket():
    lengths = np.array([5, 6, 7, 20, 21, 40])
    assert count_batches(lengths, 2) == 3
    assert count_batches(lengths, 2, [10, 30]) == 2 + 1 + 1
    assert count_batches(lengths, 2, [10, 30], drop_remainder=True) == 1 + 1 + 0


def test_prediction_dataset_yields_features_only_in_order(reviews, tokenizer):
    unlabelled = read_examples(DATA / "reviews.csv", label_column=None)
    ds = make_dataset(unlabelled, tokenizer, batch_size=10)
    assert set(ds.element_spec) == KEYS
    rows = [row for f in ds for row in batch_rows(f)]
    assert rows == unpadded_rows(tokenizer, reviews.texts)


def test_multi_label_and_regression_targets(tokenizer):
    multi = read_examples(DATA / "reviews_multilabel.jsonl")
    vocab = LabelVocab.from_examples(multi, problem_type="multi_label")
    labels = np.concatenate([y for _, y in epoch(make_dataset(multi, tokenizer, vocab, batch_size=7))])
    np.testing.assert_array_equal(labels, vocab.encode(multi))
    assert labels.dtype == np.float32 and labels.shape == (24, 4)

    regression = read_examples(DATA / "reviews_regression.jsonl")
    vocab = LabelVocab.from_examples(regression, problem_type="regression")
    labels = np.concatenate([y for _, y in epoch(make_dataset(regression, tokenizer, vocab, batch_size=7,
                                                              bucket_boundaries="auto", shuffle=True))])
    np.testing.assert_allclose(sorted(labels), sorted(np.float32(regression.labels)))


def test_bad_arguments(reviews, vocab, tokenizer):
    with pytest.raises(DataError, match="batch_size must be a positive int"):
        make_dataset(reviews, tokenizer, vocab, batch_size=0)
    with pytest.raises(DataError, match="bucket_boundaries must be"):
        make_dataset(reviews, tokenizer, vocab, batch_size=4, bucket_boundaries="quantiles")
    dev = read_examples(DATA / "dev_unseen_label.jsonl")
    with pytest.raises(DataError, match=r"dev_unseen_label\.jsonl, line 3, column 'label': label 'neutral'"):
        make_dataset(dev, tokenizer, vocab, batch_size=4)


@pytest.mark.real_model
def test_real_minilm_tokenizer(minilm_dir, reviews, vocab):
    from tfft.tokenizers import Tokenizer

    tokenizer = Tokenizer.from_pretrained(minilm_dir)  # its tokenizer.json pads to 128; tfft must not
    reference = unpadded_rows(tokenizer, reviews.texts)
    batches = epoch(make_dataset(reviews, tokenizer, vocab, batch_size=8, bucket_boundaries="auto", shuffle=True))
    assert sorted(row_order(batches, reference)) == list(range(24))
    assert all(f["input_ids"].shape[1] == f["attention_mask"].sum(axis=1).max() < 128 for f, _ in batches)
