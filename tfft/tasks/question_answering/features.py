"""`make_qa_features`: (question, context) pairs into overlapping token windows with character offsets and
answer positions, as Hugging Face's `run_qa.py` prepares SQuAD; `pad_features` batches them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tfft.tasks.question_answering.data import QAExamples

_CHUNK = 1000  # examples tokenized per call: bounds the memory of the python lists HF returns


@dataclasses.dataclass
class QAFeatures:
    """Token windows over the examples' contexts, unpadded, one entry per window.

    `input_ids[f]`, `token_type_ids[f]`: int32 [seq] arrays of window f. `offsets[f]`: int32
    [seq, 2] character (start, end) into the context for context tokens, (-1, -1) for question and
    special tokens. `example_index[f]`: the example window f comes from. `cls_index[f]`: the CLS
    position (where "no answer" points). `start_positions` / `end_positions` (training only, else
    None): token indices of the first gold answer, or `cls_index` when the answer is not wholly
    inside the window or the question is unanswerable.
    """

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    offsets: list[np.ndarray]
    example_index: np.ndarray
    cls_index: np.ndarray
    start_positions: np.ndarray | None = None
    end_positions: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def make_qa_features(examples: QAExamples, tokenizer, *, max_length: int = 384, doc_stride: int = 128,
                     max_question_length: int | None = 64, training: bool = True) -> QAFeatures:
    """Tokenize each (question, context) into windows of at most `max_length` tokens.

    The recipe of Hugging Face's `run_qa.py`: questions are left-stripped of whitespace; only the
    context is truncated, and a context too long for one window overflows into more, each
    repeating the last `doc_stride` context tokens of the one before (HF's `stride`). When the
    tokenizer pads on the left, the context comes first (as run_qa.py does). Questions longer than
    `max_question_length` tokens are cut to that many first (None: never cut).

    With `training`, each window gets the token span of the example's first gold answer, or the
    CLS position when that answer is not wholly inside the window or there is none (SQuAD v2).

    Raises ValueError when `doc_stride` is not less than the context tokens a window holds
    (max_length - question tokens - special tokens), naming the example.

    Example:
        features = make_qa_features(read_squad("train-v2.0.json"), tokenizer, max_length=384, doc_stride=128)
        batch = pad_features(features, range(32), tokenizer.pad_token_id)
    """
    if max_length < 1 or doc_stride < 0:
        raise ValueError(f"need max_length >= 1 and doc_stride >= 0, got {max_length} and {doc_stride}")
    if max_question_length is not None and max_question_length < 1:
        raise ValueError(f"max_question_length must be >= 1 (or None), got {max_question_length}")
    hf = tokenizer.hf_tokenizer
    context_first = hf.padding_side == "left"
    context_sequence = 0 if context_first else 1
    n_special = hf.num_special_tokens_to_add(pair=True)
    columns = {name: [] for name in ("input_ids", "token_type_ids", "offsets", "example_index", "cls_index",
                                     "start_positions", "end_positions")}
    for chunk in range(0, len(examples), _CHUNK):
        indices = range(chunk, min(chunk + _CHUNK, len(examples)))
        questions, lengths = _truncate_questions(hf, [examples.questions[i].lstrip() for i in indices],
                                                 max_question_length)
        for i, length in zip(indices, lengths):
            room = max_length - length - n_special
            if doc_stride >= room:
                raise ValueError(
                    f"{examples.where(i)}: doc_stride={doc_stride} must be less than the context tokens a window "
                    f"holds: max_length={max_length} - {length} question tokens - {n_special} special tokens "
                    f"= {room}; lower doc_stride or max_question_length, or raise max_length")
        contexts = [examples.contexts[i] for i in indices]
        encoding = hf(contexts if context_first else questions, questions if context_first else contexts,
                      truncation="only_first" if context_first else "only_second", max_length=max_length,
                      stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                      return_token_type_ids=True, padding=False)
        for f, local in enumerate(encoding["overflow_to_sample_mapping"]):
            example = chunk + local
            ids = encoding["input_ids"][f]
            in_context = np.array([s == context_sequence for s in encoding.sequence_ids(f)])
            offsets = np.full((len(ids), 2), -1, np.int32)
            offsets[in_context] = np.asarray(encoding["offset_mapping"][f], np.int32).reshape(-1, 2)[in_context]
            cls = _cls_index(hf, ids)
            columns["input_ids"].append(np.asarray(ids, np.int32))
            columns["token_type_ids"].append(np.asarray(encoding["token_type_ids"][f], np.int32))
            columns["offsets"].append(offsets)
            columns["example_index"].append(example)
            columns["cls_index"].append(cls)
            if training:
                start, end = answer_positions(offsets, examples.answers[example][:1], cls)
                columns["start_positions"].append(start)
                columns["end_positions"].append(end)
    as_array = lambda name: np.asarray(columns[name], np.int32)  # noqa: E731
    return QAFeatures(input_ids=columns["input_ids"], token_type_ids=columns["token_type_ids"],
                      offsets=columns["offsets"], example_index=as_array("example_index"),
                      cls_index=as_array("cls_index"),
                      start_positions=as_array("start_positions") if training else None,
                      end_positions=as_array("end_positions") if training else None)


def answer_positions(offsets: np.ndarray, answers: Sequence[tuple[str, int]], cls_index: int) -> tuple[int, int]:
    """Token (start, end) of the first answer in one window, or (cls_index, cls_index) when it is not
    wholly inside the window's context tokens or there is no answer.

    Example:
        start, end = answer_positions(features.offsets[f], [("Paris", 95)], features.cls_index[f])
    """
    context = np.flatnonzero(offsets[:, 0] >= 0)
    if not len(answers) or not len(context):
        return cls_index, cls_index
    text, start_char = answers[0]
    end_char = start_char + len(text)
    first, last = int(context[0]), int(context[-1])
    if not (offsets[first, 0] <= start_char and offsets[last, 1] >= end_char):
        return cls_index, cls_index
    # run_qa.py's scan, kept inside the context tokens: run_qa.py's own walks on into the final [SEP]
    # (offset (0, 0)) when the answer starts in a window's last token. The end never passes the start:
    # SentencePiece's lone "▁" shares its offsets with the next token.
    start = first
    while start <= last and offsets[start, 0] <= start_char:
        start += 1
    start -= 1
    end = last
    while end >= start and offsets[end, 1] >= end_char:
        end -= 1
    return start, end + 1


def _cls_index(hf, ids: list[int]) -> int:
    """Where CLS is (run_qa.py: the first CLS, else BOS, else 0); XLNet-style tokenizers put it last."""
    for token_id in (hf.cls_token_id, hf.bos_token_id):
        if token_id is not None and token_id in ids:
            return ids.index(token_id)
    return 0


def _truncate_questions(hf, questions: list[str], max_question_length: int | None) -> tuple[list[str], list[int]]:
    """Questions cut to at most `max_question_length` tokens (at a token end), and their token counts."""
    if not questions:
        return [], []
    encoding = hf(questions, add_special_tokens=False, return_offsets_mapping=True)
    out, lengths = [], []
    for question, ids, offsets in zip(questions, encoding["input_ids"], encoding["offset_mapping"]):
        while max_question_length is not None and len(ids) > max_question_length:
            # Re-tokenize the cut text: a prefix need not tokenize as the tokens it was cut from.
            cut = offsets[max_question_length - 1][1]
            question = question[:cut if cut < len(question) else len(question) - 1]
            again = hf(question, add_special_tokens=False, return_offsets_mapping=True)
            ids, offsets = again["input_ids"], again["offset_mapping"]
        out.append(question)
        lengths.append(len(ids))
    return out, lengths


def pad_features(features: QAFeatures, indices: Sequence[int], pad_id: int) -> dict[str, np.ndarray]:
    """Windows `indices` of `features` as one right-padded batch.

    Returns int32 "input_ids" (padded with `pad_id`), "token_type_ids" and "attention_mask" of shape
    [batch, longest window], plus "start_positions" and "end_positions" [batch] for training features.

    Example:
        batch = pad_features(features, range(0, 32), tokenizer.pad_token_id)
        batch["input_ids"].shape    # (32, 384) when some window is full
    """
    indices = [int(i) for i in indices]
    longest = max((len(features.input_ids[i]) for i in indices), default=0)
    input_ids = np.full((len(indices), longest), pad_id, np.int32)
    token_type_ids = np.zeros((len(indices), longest), np.int32)
    attention_mask = np.zeros((len(indices), longest), np.int32)
    for row, i in enumerate(indices):
        n = len(features.input_ids[i])
        input_ids[row, :n] = features.input_ids[i]
        token_type_ids[row, :n] = features.token_type_ids[i]
        attention_mask[row, :n] = 1
    batch = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
    if features.start_positions is not None:
        batch["start_positions"] = features.start_positions[indices].astype(np.int32)
        batch["end_positions"] = features.end_positions[indices].astype(np.int32)
    return batch
