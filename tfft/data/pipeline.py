"""`make_dataset`: tokenize `Examples` once on the host, then batch them with tf.data, padding each batch
only to its longest row."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from tfft.data.examples import Examples
from tfft.data.labels import LabelVocab
from tfft.errors import DataError

logger = logging.getLogger("tfft")

_CHUNK = 1000               # rows tokenized per call: bounds the padded chunk the tokenizer returns
_PROGRESS_FROM = 20_000     # show a progress bar from this many rows on
_MAX_AUTO_BUCKETS = 8


@dataclasses.dataclass
class TokenizedRows:
    """Unpadded token rows: the flat ids of every row one after another, and each row's length."""

    input_ids: np.ndarray       # int32 [total tokens]
    token_type_ids: np.ndarray  # int32 [total tokens]
    lengths: np.ndarray         # int32 [rows]


def tokenize_rows(examples: Examples, tokenizer, max_length: int | None = None) -> TokenizedRows:
    """Tokenize every example with the tfft `Tokenizer` (in chunks), keeping rows unpadded."""
    n = len(examples)
    ids, types, lengths = [], [], []
    with tqdm(total=n, desc=f"tokenizing {examples.source}", unit=" rows", leave=False,
              disable=n < _PROGRESS_FROM) as progress:
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            pairs = examples.text_pairs[start:stop] if examples.text_pairs is not None else None
            batch = tokenizer(examples.texts[start:stop], pairs, max_length=max_length)
            real = batch["attention_mask"].astype(bool)  # row-major, so works for left padding too
            ids.append(batch["input_ids"][real])
            types.append(batch["token_type_ids"][real])
            lengths.append(real.sum(axis=1, dtype=np.int32))
            progress.update(stop - start)
    return TokenizedRows(np.concatenate(ids).astype(np.int32), np.concatenate(types).astype(np.int32),
                         np.concatenate(lengths).astype(np.int32))


def auto_bucket_boundaries(lengths: np.ndarray, batch_size: int) -> list[int]:
    """Length boundaries at quantiles of `lengths`, so buckets hold similar numbers of rows.

    Fewer buckets for small data: each bucket may end an epoch with one partial batch.
    """
    num_buckets = int(np.clip(len(lengths) // (4 * batch_size), 1, _MAX_AUTO_BUCKETS))
    quantiles = np.quantile(lengths, np.linspace(0, 1, num_buckets + 1)[1:-1])
    # A bucket holds lengths below its boundary; +1 puts rows of exactly the quantile length below it.
    boundaries = sorted({int(q) + 1 for q in quantiles})
    return [b for b in boundaries if int(np.min(lengths)) < b <= int(np.max(lengths))]


def count_batches(lengths: np.ndarray, batch_size: int, bucket_boundaries=(), drop_remainder: bool = False) -> int:
    """Batches per epoch: each bucket (the whole data when unbucketed) is batched on its own."""
    bucket_sizes = np.bincount(np.searchsorted(np.asarray(bucket_boundaries, np.int64), lengths, side="right"))
    if drop_remainder:
        return int(np.sum(bucket_sizes // batch_size))
    return int(np.sum(-(-bucket_sizes // batch_size)))


def make_dataset(examples: Examples, tokenizer, label_vocab: LabelVocab | None = None, *, batch_size: int,
                 max_length: int | None = None, shuffle: bool = False, seed: int = 0,
                 bucket_boundaries: list[int] | str | None = None, cache: bool = True,
                 drop_remainder: bool = False) -> tf.data.Dataset:
    """A batched `tf.data.Dataset` of `(features, labels)`, or `features` alone without `label_vocab`.

    features: {"input_ids", "attention_mask", "token_type_ids"}, int32 `[batch, seq]`, where seq
    is the longest row of that batch (padded with the tokenizer's pad id, mask 0, type 0); rows
    are truncated to `max_length` only if it is given, never padded to it. labels: `label_vocab.encode`.

    Args:
        batch_size: rows per batch (each bucket is batched on its own, so its last batch may be smaller).
        max_length: truncate rows to this many tokens, special tokens included.
        shuffle: reshuffle the rows every epoch; the order depends only on `seed`.
        bucket_boundaries: group rows of similar length so batches carry less padding: a list of
            token-length boundaries, "auto" (quantiles of the data's lengths) or None.
        cache: cache the tokenized rows in memory, so later epochs skip the input pipeline.
        drop_remainder: drop partial batches (one per bucket).

    The tokenization happens once here, on the host (a progress bar for large data). The
    dataset's `cardinality()` is the number of batches per epoch, which Keras and learning-rate
    schedules can use. With `shuffle=False` and no bucketing, batches follow the examples' order,
    so predictions line up with the input rows.

    Example:
        train_ds = make_dataset(train, tokenizer, vocab, batch_size=32, shuffle=True, bucket_boundaries="auto")
        steps_per_epoch = int(train_ds.cardinality())
        dev_ds = make_dataset(dev, tokenizer, vocab, batch_size=64)       # in file order
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"batch_size must be a positive int, got {batch_size!r}")
    if not len(examples):
        raise DataError(f"{examples.source}: no examples to make a dataset from")
    targets = label_vocab.encode(examples) if label_vocab is not None else None
    rows = tokenize_rows(examples, tokenizer, max_length=max_length)
    return batch_token_rows(rows, targets, pad_id=tokenizer.pad_token_id, batch_size=batch_size, shuffle=shuffle,
                            seed=seed, bucket_boundaries=bucket_boundaries, cache=cache,
                            drop_remainder=drop_remainder, source=examples.source)


def rows_from_arrays(input_ids, token_type_ids) -> TokenizedRows:
    """`TokenizedRows` from one int array per row (e.g. token-classification windows)."""
    lengths = np.asarray([len(row) for row in input_ids], np.int32)
    return TokenizedRows(np.concatenate(input_ids).astype(np.int32) if len(input_ids) else np.zeros(0, np.int32),
                         np.concatenate(token_type_ids).astype(np.int32) if len(input_ids) else np.zeros(0, np.int32),
                         lengths)


def batch_token_rows(rows: TokenizedRows, targets=None, *, pad_id: int | None, batch_size: int,
                     shuffle: bool = False, seed: int = 0, bucket_boundaries: list[int] | str | None = None,
                     cache: bool = True, drop_remainder: bool = False, target_padding=0,
                     source: str = "data") -> tf.data.Dataset:
    """Batches tokenized rows (and their targets) as `make_dataset` does; every task's pipeline ends here.

    targets: None, an array with one entry per row, or a list of 1-D arrays, one per row with one
    value per token (token labels), padded with `target_padding` like the ids.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"batch_size must be a positive int, got {batch_size!r}")
    if not len(rows.lengths):
        raise DataError(f"{source}: no examples to make a dataset from")
    if bucket_boundaries == "auto":
        bucket_boundaries = auto_bucket_boundaries(rows.lengths, batch_size)
        logger.debug("%s: bucket boundaries %s", source, bucket_boundaries)
    elif isinstance(bucket_boundaries, str):
        raise DataError(f"bucket_boundaries must be a list of lengths, 'auto' or None, got {bucket_boundaries!r}")
    boundaries = sorted(int(b) for b in bucket_boundaries or ())
    if any(b < 1 for b in boundaries) or len(set(boundaries)) != len(boundaries):
        raise DataError(f"bucket_boundaries must be distinct positive lengths, got {bucket_boundaries!r}")

    features = {
        "input_ids": tf.RaggedTensor.from_row_lengths(rows.input_ids, rows.lengths),
        "token_type_ids": tf.RaggedTensor.from_row_lengths(rows.token_type_ids, rows.lengths),
    }
    if isinstance(targets, list):  # one value per token
        targets = tf.RaggedTensor.from_row_lengths(np.concatenate(targets), [len(t) for t in targets])
    ds = tf.data.Dataset.from_tensor_slices(features if targets is None else (features, targets))
    ds = ds.map(_with_attention_mask)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(rows.lengths), seed=seed, reshuffle_each_iteration=True)

    pad_id = pad_id if pad_id is not None else 0  # masked out either way
    padding = {"input_ids": pad_id, "attention_mask": 0, "token_type_ids": 0}
    if targets is not None:
        padding = (padding, tf.constant(target_padding, targets.dtype))
    if boundaries:
        ds = ds.bucket_by_sequence_length(
            _row_length, boundaries, [batch_size] * (len(boundaries) + 1), padding_values=padding,
            pad_to_bucket_boundary=False, drop_remainder=drop_remainder)
    else:
        ds = ds.padded_batch(batch_size, padding_values=padding, drop_remainder=drop_remainder)
    batches = count_batches(rows.lengths, batch_size, boundaries, drop_remainder)
    ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    # Rows come from memory, not files: under a multi-worker strategy each worker builds this
    # same dataset and keeps its own slice of every global batch (sharding by file would fail).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _with_attention_mask(features, targets=None):
    input_ids = tf.convert_to_tensor(features["input_ids"])
    features = {"input_ids": input_ids, "attention_mask": tf.ones_like(input_ids),
                "token_type_ids": tf.convert_to_tensor(features["token_type_ids"])}
    return features if targets is None else (features, targets)


def _row_length(features, targets=None):
    return tf.shape(features["input_ids"])[0]
