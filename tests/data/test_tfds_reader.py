import json

import pytest
import tensorflow as tf

from tests.data.conftest import DATA
from tfft.data import LabelVocab, read_tfds
from tfft.errors import DataError

tfds = pytest.importorskip("tensorflow_datasets")

# ClassLabel order on purpose not sorted: the dataset's own order must win.
NAMES = ["positive", "negative"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tiny TFDS dataset built locally from the review fixture (no network)."""
    rows = [json.loads(line) for line in (DATA / "reviews.jsonl").read_text(encoding="utf-8").splitlines()]
    rows[5]["text"] = "   "  # one bad row, record 6
    directory = tmp_path_factory.mktemp("tfds")
    features = tfds.features.FeaturesDict({
        "text": tfds.features.Text(),
        "label": tfds.features.ClassLabel(names=NAMES),
        "score": tf.float32,
    })
    split = {
        "text": [r["text"] for r in rows],
        "label": [NAMES.index(r["label"]) for r in rows],
        "score": [float(len(r["text"])) for r in rows],
    }
    tfds.dataset_builders.store_as_tfds_dataset(
        name="tiny_reviews", version="1.0.0", features=features, data_dir=directory, disable_shuffling=True,
        split_datasets={"train": tf.data.Dataset.from_tensor_slices(split)})
    return directory, rows


def test_reads_a_local_split_with_class_names(data_dir):
    directory, rows = data_dir
    examples = read_tfds("tiny_reviews", split="train", data_dir=directory, on_bad_row="skip")
    kept = rows[:5] + rows[6:]
    assert examples.texts == [r["text"] for r in kept]
    assert examples.labels == [r["label"] for r in kept]
    assert examples.skipped.count == 1 and "record 6: column 'text' is empty" in examples.skipped.reasons[0]
    assert examples.label_names == tuple(NAMES)
    vocab = LabelVocab.from_examples(examples)
    assert vocab.names == tuple(NAMES)
    assert list(vocab.encode(examples)) == [NAMES.index(r["label"]) for r in kept]


def test_bad_record_names_dataset_and_record(data_dir):
    directory, _ = data_dir
    with pytest.raises(DataError, match=r"tfds tiny_reviews \[train\], record 6: column 'text' is empty"):
        read_tfds("tiny_reviews", split="train", data_dir=directory)


def test_numeric_feature_as_regression_label_and_slicing(data_dir):
    directory, rows = data_dir
    examples = read_tfds("tiny_reviews", split="train[:5]", data_dir=directory, label_column="score")
    assert examples.labels == [float(len(r["text"])) for r in rows[:5]]
    assert examples.label_names is None


def test_missing_feature_and_missing_dataset(data_dir, tmp_path):
    directory, _ = data_dir
    with pytest.raises(DataError, match=r"tfds tiny_reviews \[train\]: no feature 'sentence' \(features: "):
        read_tfds("tiny_reviews", split="train", data_dir=directory, text_column="sentence")
    with pytest.raises(DataError, match=r"tfds not_prepared_here \[train\]: cannot load from data_dir"):
        read_tfds("not_prepared_here", split="train", data_dir=tmp_path)
