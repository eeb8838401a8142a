import re

import numpy as np
import pytest

from tests.tasks.question_answering.conftest import TOKENIZERS, context_spans, load_tokenizer, windows_of
from tfft.tasks.question_answering.data import QAExamples
from tfft.tasks.question_answering.features import answer_positions, make_qa_features, pad_features


def _context_tokens(tokenizer, context):
    """(start, end) of every token of the context tokenized alone: what the windows together must cover."""
    encoding = tokenizer.hf_tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    return [tuple(o) for o in encoding["offset_mapping"]]


def _examples(context, answers, questions=None, impossible=None):
    """One example per answer (text, start) over the same context."""
    n = len(answers)
    return QAExamples(ids=[f"q{i}" for i in range(n)], questions=questions or ["What is named here?"] * n,
                      contexts=[context] * n, answers=[[a] if a else [] for a in answers],
                      is_impossible=impossible or [not a for a in answers], titles=[None] * n,
                      locations=[f"item {i}" for i in range(n)])


# -- windows ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TOKENIZERS)
@pytest.mark.parametrize("max_length, doc_stride", [(64, 16), (48, 1), (100, 40)])
def test_windows_cover_every_context_token_overlapping_by_doc_stride(squad, name, max_length, doc_stride):
    tokenizer = load_tokenizer(name)
    features = make_qa_features(squad, tokenizer, max_length=max_length, doc_stride=doc_stride)
    assert sorted(set(features.example_index.tolist())) == list(range(len(squad)))
    several = 0
    for example in range(len(squad)):
        full = _context_tokens(tokenizer, squad.contexts[example])
        windows = [context_spans(features.offsets[f]) for f in windows_of(features, example)]
        several += len(windows) > 1
        covered = list(windows[0])
        for before, after in zip(windows, windows[1:]):
            assert after[:doc_stride] == before[-doc_stride:]  # HF's stride: tokens repeated from the window before
            covered += after[doc_stride:]
        assert covered == full
        for f in windows_of(features, example):
            assert len(features.input_ids[f]) <= max_length
            assert len(features.input_ids[f]) == len(features.token_type_ids[f]) == len(features.offsets[f])
            assert features.input_ids[f].dtype == features.offsets[f].dtype == np.int32
    assert several >= 5  # the Amazon paragraph and others overflow at these lengths


@pytest.mark.parametrize("name", TOKENIZERS)
def test_a_window_is_the_tokenizers_own_pair_encoding(squad, name):
    tokenizer = load_tokenizer(name)
    features = make_qa_features(squad, tokenizer, max_length=1024, doc_stride=128)
    assert features.example_index.tolist() == list(range(len(squad)))  # every context fits one window
    hf = tokenizer.hf_tokenizer
    for i in (0, len(squad) - 1):
        direct = hf(squad.questions[i].lstrip(), squad.contexts[i], return_offsets_mapping=True,
                    return_token_type_ids=True)
        assert features.input_ids[i].tolist() == direct["input_ids"]
        assert features.token_type_ids[i].tolist() == direct["token_type_ids"]
        context = np.array([s == 1 for s in direct.sequence_ids()])
        expected = [list(o) for o, c in zip(direct["offset_mapping"], context) if c]
        assert features.offsets[i][context].tolist() == expected
        assert (features.offsets[i][~context] == -1).all()
        assert features.cls_index[i] == 0 and features.input_ids[i][0] == hf.cls_token_id


def test_question_whitespace_is_stripped_and_long_questions_are_cut(squad):
    tokenizer = load_tokenizer("bert_uncased")
    hf = tokenizer.hf_tokenizer
    i = squad.questions.index("   Which structure was finished in 1930?")
    long_question = "Which of the rivers that join the Amazon above Manaus " * 8
    questions = [squad.questions[i], squad.questions[i].lstrip(), long_question]
    examples = QAExamples(ids=["a", "b", "c"], questions=questions,
                          contexts=[squad.contexts[i]] * 3, answers=[squad.answers[i]] * 3, is_impossible=[False] * 3,
                          titles=[None] * 3, locations=["a", "b", "c"])
    features = make_qa_features(examples, tokenizer, max_length=64, doc_stride=8, max_question_length=10)
    first, second, third = (windows_of(features, e) for e in range(3))
    assert [features.input_ids[f].tolist() for f in first] == [features.input_ids[f].tolist() for f in second]
    question_tokens = hf(long_question, add_special_tokens=False)["input_ids"]
    assert len(question_tokens) > 60
    for f in third:
        ids = features.input_ids[f].tolist()
        assert ids[1:12] == question_tokens[:10] + [hf.sep_token_id]
    # Uncut, the same question leaves no room for the context.
    with pytest.raises(ValueError, match=r"^<memory>, c: doc_stride=8 must be less than the context tokens a window "
                                         r"holds: max_length=64 - \d+ question tokens - 3 special tokens = -\d+"):
        make_qa_features(examples, tokenizer, max_length=64, doc_stride=8, max_question_length=None)


@pytest.mark.parametrize("name, specials", [("bert_uncased", 3), ("xlm_roberta", 4)])
def test_doc_stride_must_leave_room(squad, name, specials):
    tokenizer = load_tokenizer(name)
    lengths = [len(tokenizer.hf_tokenizer(q.lstrip(), add_special_tokens=False)["input_ids"]) for q in squad.questions]
    longest = int(np.argmax(lengths))
    question_tokens = lengths[longest]
    room = 64 - question_tokens - specials
    make_qa_features(squad, tokenizer, max_length=64, doc_stride=room - 1, max_question_length=None)
    with pytest.raises(ValueError, match=rf"{re.escape(squad.where(longest))}: doc_stride={room} must be less than .* "
                                         rf"- {question_tokens} question tokens - {specials} special tokens = {room}"):
        make_qa_features(squad, tokenizer, max_length=64, doc_stride=room, max_question_length=None)


# -- answer positions ------------------------------------------------------------------------------
def _answer_tokens(tokenizer, examples):
    """The most tokens a first gold answer has: with doc_stride >= that - 1 some window holds each whole."""
    hf = tokenizer.hf_tokenizer
    return max(len(hf(a[0][0], add_special_tokens=False)["input_ids"]) for a in examples.answers if a)


def _check_positions(examples, features):
    """Every answerable example's first answer is recovered from its positions in at least one window;
    a window holds those positions exactly when the answer lies wholly inside it; the rest point at CLS."""
    recovered = 0
    for example in range(len(examples)):
        found = False
        for f in windows_of(features, example):
            start, end, cls = features.start_positions[f], features.end_positions[f], features.cls_index[f]
            spans = context_spans(features.offsets[f])
            if not examples.answers[example]:
                assert start == end == cls
                continue
            text, char = examples.answers[example][0]
            inside = spans[0][0] <= char and char + len(text) <= spans[-1][1]
            if not inside:
                assert start == end == cls, (examples.ids[example], f)
                continue
            offsets = features.offsets[f]
            assert offsets[start, 0] >= 0 and offsets[end, 0] >= 0 and start <= end
            assert examples.contexts[example][offsets[start, 0]:offsets[end, 1]] == text
            found = True
        if examples.answers[example]:
            assert found, examples.ids[example]
            recovered += 1
    return recovered


@pytest.mark.parametrize("name", TOKENIZERS)
def test_answer_positions_recover_every_gold_answer(squad, name):
    tokenizer = load_tokenizer(name)
    assert _answer_tokens(tokenizer, squad) <= 32 + 1
    features = make_qa_features(squad, tokenizer, max_length=96, doc_stride=32)
    assert len(windows_of(features, squad.titles.index("Amazon_River"))) > 10
    assert _check_positions(squad, features) == 31  # all answerable questions; the 4 others point at CLS


@pytest.mark.parametrize("name", TOKENIZERS)
def test_answers_at_window_borders(squad, name):
    """Every token and every two-word phrase of the long Amazon paragraph as an answer, so that some
    answers are a window's first or last context token and others are cut by a window's edge."""
    tokenizer = load_tokenizer(name)
    context = squad.contexts[squad.titles.index("Amazon_River")]
    tokens = _context_tokens(tokenizer, context)
    # Skip SentencePiece's lone "▁", whose offsets overlap the next token's.
    answers = [(context[s:e], s) for (s, e), (after, _) in zip(tokens, tokens[1:] + [(len(context), 0)]) if e <= after]
    starts, ends = {s for s, _ in tokens}, {e for _, e in tokens}
    phrases = [(m.group(), m.start()) for m in re.finditer(r"\w+[ ,]\w+", context)]
    answers += [(p, s) for p, s in phrases if s in starts and s + len(p) in ends]  # those the tokenizer does not merge
    assert len(answers) > 0.95 * (len(tokens) + len(phrases))
    assert _answer_tokens(tokenizer, _examples(context, answers)) <= 12 + 1
    # The windows of one example; every answer is placed in each of them as make_qa_features does.
    features = make_qa_features(_examples(context, [answers[0]]), tokenizer, max_length=32, doc_stride=12)
    assert len(features) > 30
    windows = [context_spans(offsets) for offsets in features.offsets]
    first_token = last_token = cut = 0
    for text, char in answers:
        found = False
        for f, spans in enumerate(windows):
            start, end = answer_positions(features.offsets[f], [(text, char)], features.cls_index[f])
            if not spans[0][0] <= char < char + len(text) <= spans[-1][1]:
                assert start == end == features.cls_index[f]
                cut += char < spans[-1][1] < char + len(text) or char < spans[0][0] < char + len(text)
                continue
            assert features.offsets[f][start, 0] >= 0 and start <= end
            assert context[features.offsets[f][start, 0]:features.offsets[f][end, 1]] == text
            found = True
            first_token += char == spans[0][0]
            last_token += char == spans[-1][0]  # starts in the last token: run_qa.py's scan overruns here
        assert found, text
    assert first_token > 10 and last_token > 10 and cut > 10


@pytest.mark.parametrize("name", ["bert_uncased", "xlm_roberta"])
def test_context_first_when_the_tokenizer_pads_on_the_left(squad, name):
    tokenizer = load_tokenizer(name, padding_side="left")
    features = make_qa_features(squad, tokenizer, max_length=96, doc_stride=32)
    assert _check_positions(squad, features) == 31
    hf = tokenizer.hf_tokenizer
    f = windows_of(features, 0)[0]
    question = hf(squad.questions[0], add_special_tokens=False)["input_ids"]
    ids, offsets = features.input_ids[f].tolist(), features.offsets[f]
    context = np.flatnonzero(offsets[:, 0] >= 0)
    assert context[0] == 1  # right after CLS
    assert ids[len(ids) - 1 - len(question):-1] == question  # the question comes last, after the context
    if name == "bert_uncased":
        assert (features.token_type_ids[f][context] == 0).all()


def test_not_training_has_no_positions(squad):
    features = make_qa_features(squad, load_tokenizer("bert_uncased"), max_length=64, doc_stride=16, training=False)
    assert features.start_positions is None and features.end_positions is None
    assert len(features) == len(features.offsets) == len(features.example_index)


def test_pad_features(squad):
    tokenizer = load_tokenizer("bert_uncased")
    features = make_qa_features(squad, tokenizer, max_length=64, doc_stride=16)
    indices = np.array([0, len(features) - 1, 3])
    batch = pad_features(features, indices, tokenizer.pad_token_id)
    longest = max(len(features.input_ids[i]) for i in indices)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions"}
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (3, longest)
    assert all(v.dtype == np.int32 for v in batch.values())
    for row, i in enumerate(indices):
        n = len(features.input_ids[i])
        assert batch["input_ids"][row, :n].tolist() == features.input_ids[i].tolist()
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        assert batch["token_type_ids"][row, :n].tolist() == features.token_type_ids[i].tolist()
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (longest - n)
    assert batch["start_positions"].tolist() == features.start_positions[indices].tolist()
    assert "start_positions" not in pad_features(
        make_qa_features(squad, tokenizer, max_length=64, doc_stride=16, training=False), [0], 0)
