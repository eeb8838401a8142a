"""Text-classification data: readers into `Examples`, label vocabularies, and batched `tf.data` pipelines.

    >>> from tfft.data import LabelVocab, make_dataset, read_examples
    >>> train = read_examples("train.jsonl")                  # or .csv, .tsv, .tfrecord; read_tfds(...)
    >>> vocab = LabelVocab.from_examples(train)               # or LabelVocab("single_label", names)
    >>> train_ds = make_dataset(train, tokenizer, vocab, batch_size=32, shuffle=True, bucket_boundaries="auto")
"""

from tfft.data.examples import Examples, SkippedRows
from tfft.data.labels import LabelVocab
from tfft.data.pipeline import make_dataset
from tfft.data.readers import read_examples
from tfft.data.tfds_reader import read_tfds

__all__ = ["Examples", "LabelVocab", "SkippedRows", "make_dataset", "read_examples", "read_tfds"]
