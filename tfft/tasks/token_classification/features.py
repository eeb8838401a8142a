"""Words -> subword features with aligned labels, and subword logits -> one tag per word.

Each sentence becomes one or more *windows* of subword tokens. By default a sentence longer
than `max_length` is truncated and the words cut off are predicted "O" (so their entities
count as missed, never vanish). With `stride` set, it is split into overlapping windows
instead: each window holds `max_length` tokens at most and starts `max_length - specials -
stride` tokens after the previous one, and each word's prediction comes from the window
where it sits farthest from an edge.

Labels: the first subword of each word carries the word's tag id (`label_all_subwords=True`
labels the other subwords too, with B- turned into I-, as transformers' `run_ner.py`); other
positions, special tokens and padding hold `IGNORE` (-100), which the loss and metrics skip.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfft.errors import DataError

IGNORE = -100


@dataclasses.dataclass
class TokenFeatures:
    """Windows of subword ids, unpadded.

    input_ids, token_type_ids: one int32 array per window.
    word_ids: per window, the word index of each token in its sentence (-1: special token).
    first: per window, True at each word's first subword (in the whole sentence).
    labels: per window, int32 targets (IGNORE where unlabelled), or None without tags.
    sentence: int array, the sentence of each window.
    """

    input_ids: list
    token_type_ids: list
    word_ids: list
    first: list
    labels: list | None
    sentence: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


def _continuation_ids(label_names):
    """Tag id for subwords after a word's first: B-X -> I-X where the label set has it."""
    index = {name: i for i, name in enumerate(label_names)}
    out = np.arange(len(label_names))
    for i, name in enumerate(label_names):
        if name.startswith("B-") and f"I-{name[2:]}" in index:
            out[i] = index[f"I-{name[2:]}"]
    return out


def _sentence_tokens(hf_tokenizer, words_batch):
    """Per sentence: (subword ids, word index of each subword), without special tokens."""
    encoded = hf_tokenizer(words_batch, is_split_into_words=True, add_special_tokens=False,
                           return_attention_mask=False, return_token_type_ids=False)
    out = []
    for i, ids in enumerate(encoded["input_ids"]):
        word_ids = encoded.word_ids(i)
        out.append((np.asarray(ids, np.int32), np.asarray(word_ids, np.int32)))
    return out


def make_token_features(words, tokenizer, *, tag_ids=None, label_names=None, max_length=128,
                        stride=None, label_all_subwords=False, chunk=1000) -> TokenFeatures:
    """Tokenizes sentences of words into windows with aligned labels.

    Args:
        words: list of sentences, each a list of word strings.
        tokenizer: a `tfft.Tokenizer`.
        tag_ids: per sentence, an int array of tag ids (one per word), or None (prediction).
        label_names: tag names in id order (for `label_all_subwords`).
        max_length: tokens per window, special tokens included.
        stride: None truncates; an int splits long sentences into windows overlapping by
            `stride` tokens.
        label_all_subwords: label every subword, not only the first of each word.

    Example:
        >>> features = make_token_features([["Barack", "Obama", "visited", "Paris"]], tokenizer,
        ...                                tag_ids=[np.array([1, 2, 0, 3])], max_length=32)
    """
    hf = tokenizer.hf_tokenizer
    specials = tokenizer.num_special_tokens()
    budget = max_length - specials
    if budget < 1:
        raise DataError(f"max_length={max_length} leaves no room for tokens besides {specials} special tokens")
    if stride is not None and not 0 <= stride < budget:
        raise DataError(f"stride={stride} must be at least 0 and below max_length - {specials} = {budget}")
    continuation = _continuation_ids(label_names) if label_all_subwords and label_names is not None else None
    prefix, suffix, type_id = _special_tokens(hf)
    out = TokenFeatures([], [], [], [], [] if tag_ids is not None else None, [])
    for start in range(0, len(words), chunk):
        for offset, (ids, word_ids) in enumerate(_sentence_tokens(hf, words[start : start + chunk])):
            index = start + offset
            first = np.concatenate([[True], word_ids[1:] != word_ids[:-1]]) if len(ids) else np.zeros(0, bool)
            step = budget if stride is None else budget - stride
            begin = 0
            while True:
                piece = slice(begin, begin + budget)
                window_ids = np.concatenate([prefix, ids[piece], suffix])
                window_words = np.concatenate([np.full(len(prefix), -1, np.int32), word_ids[piece],
                                               np.full(len(suffix), -1, np.int32)])
                out.input_ids.append(window_ids.astype(np.int32))
                out.token_type_ids.append(np.full(len(window_ids), type_id, np.int32))
                window_first = np.concatenate([np.zeros(len(prefix), bool), first[piece], np.zeros(len(suffix), bool)])
                out.word_ids.append(window_words)
                out.first.append(window_first)
                out.sentence.append(index)
                if tag_ids is not None:
                    out.labels.append(_window_labels(window_words, window_first, tag_ids[index], continuation))
                if stride is None or begin + budget >= len(ids):
                    break
                begin += step
    out.sentence = np.asarray(out.sentence, np.int64)
    return out


def _special_tokens(hf_tokenizer):
    """(ids before, ids after, token type) that the tokenizer puts around one sequence."""
    probe = hf_tokenizer([["probe"]], is_split_into_words=True, return_token_type_ids=True)
    ids, words = np.asarray(probe["input_ids"][0], np.int32), probe.word_ids(0)
    inside = [i for i, w in enumerate(words) if w is not None]
    return ids[: inside[0]], ids[inside[-1] + 1 :], int(probe["token_type_ids"][0][inside[0]])


def _window_labels(word_ids, first, tags, continuation):
    labels = np.full(len(word_ids), IGNORE, np.int32)
    real = word_ids >= 0
    labels[first] = tags[word_ids[first]]
    if continuation is not None:
        rest = real & ~first
        labels[rest] = continuation[tags[word_ids[rest]]]
    return labels


def word_predictions(features: TokenFeatures, logits, num_words):
    """Per sentence, (tag id per word, probability of that tag); words no window kept get -1.

    `logits`: per window, a float array [tokens (padding allowed), labels]. A word's prediction
    is its first subword's, from the window where the word is farthest from an edge.
    """
    tags = [np.full(n, -1, np.int64) for n in num_words]
    scores = [np.zeros(n, np.float64) for n in num_words]
    margin = [np.full(n, -1, np.int64) for n in num_words]
    for window, word_ids in enumerate(features.word_ids):
        sentence = features.sentence[window]
        real = np.flatnonzero(word_ids >= 0)
        if not len(real):
            continue
        first = np.flatnonzero(features.first[window])
        row = np.asarray(logits[window][: len(word_ids)], np.float64)
        probs = np.exp(row - row.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        lo, hi = real[0], real[-1]
        for position in first:
            word = word_ids[position]
            distance = min(position - lo, hi - position)
            if distance > margin[sentence][word]:
                margin[sentence][word] = distance
                tags[sentence][word] = int(np.argmax(probs[position]))
                scores[sentence][word] = float(probs[position].max())
    return tags, scores


def pad_windows(features, indices, pad_id):
    """A padded int32 batch {input_ids, attention_mask, token_type_ids} of the windows `indices`."""
    indices = list(indices)
    width = max(len(features.input_ids[i]) for i in indices)
    batch = {name: np.zeros((len(indices), width), np.int32) for name in ("input_ids", "attention_mask",
                                                                          "token_type_ids")}
    batch["input_ids"][:] = pad_id
    for row, i in enumerate(indices):
        n = len(features.input_ids[i])
        batch["input_ids"][row, :n] = features.input_ids[i]
        batch["token_type_ids"][row, :n] = features.token_type_ids[i]
        batch["attention_mask"][row, :n] = 1
    return batch
