# ruff: noqa: RUF001  (full-width CJK punctuation is intended)
"""split_text: examples for each rule, and Hypothesis for the invariants."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.speech.chunking import SHORT_CHUNK_CHARS, split_text

CJK_MARKS = "。！？，、；：」』）"


def normalised(text: str) -> str:
    return " ".join(text.split())


def assert_valid_chunks(text: str, chunks: list[str], max_chars: int) -> None:
    """Every chunk fits, is trimmed and non-empty, and the chunks tile the normalised text,
    cut only at spaces, after CJK marks, or inside a word longer than ``max_chars``."""
    flat = normalised(text)
    tokens_at: list[str] = []  # the whitespace token covering each position of ``flat``
    for token in flat.split(" ") if flat else []:
        tokens_at.extend([token] * len(token) + [" "])
    position = 0
    for index, chunk in enumerate(chunks):
        assert chunk, "empty chunk"
        assert len(chunk) <= max_chars
        assert chunk == normalised(chunk)
        assert flat.startswith(chunk, position), (flat[position:], chunk)
        position += len(chunk)
        if index == len(chunks) - 1:
            break
        if flat[position] == " ":
            position += 1
        else:  # a cut inside a whitespace token
            assert len(tokens_at[position]) > max_chars or flat[position - 1] in CJK_MARKS, (
                f"cut inside {tokens_at[position]!r}"
            )
    assert position == len(flat)


def greedy_chunk_count(words: list[str], max_chars: int) -> int:
    count, length = 0, max_chars + 1
    for item in words:
        if length + 1 + len(item) > max_chars:
            count, length = count + 1, len(item)
        else:
            length += 1 + len(item)
    return count


# --------------------------------------------------------------------------- examples


def test_empty_and_blank_text_give_no_chunks() -> None:
    assert split_text("", 280) == []
    assert split_text(" \n\t \u3000 ", 280) == []


def test_short_sentences_are_packed_and_whitespace_normalised() -> None:
    text = "  One   sentence here.\n\nAnother one!   A third?\tYes.  "
    assert split_text(text, 280) == ["One sentence here. Another one! A third? Yes."]


def test_breaks_fall_between_sentences_when_every_sentence_fits() -> None:
    sentences = [f"Sentence number {i} talks about something rather ordinary." for i in range(12)]
    chunks = split_text(" ".join(sentences), 150)
    assert all(chunk.endswith(".") for chunk in chunks)
    assert " ".join(chunks) == " ".join(sentences)
    assert len(chunks) == 6  # 2 sentences (~118 chars) per chunk; 3 would be 178 > 150


def test_newlines_end_sentences() -> None:
    text = "first line without a stop\nsecond line without one either\nthird line"
    chunks = split_text(text, 45)
    assert chunks == ["first line without a stop", "second line without one either third line"]


def test_long_sentence_splits_at_a_clause_before_a_word() -> None:
    clause_a = "This opening clause runs on for quite a while without stopping"
    clause_b = "and this second clause also goes on and on"
    text = f"{clause_a}, {clause_b}."
    assert split_text(text, 80) == [f"{clause_a},", f"{clause_b}."]


def test_text_without_any_punctuation_splits_between_words() -> None:
    words = [f"word{i}" for i in range(300)]
    text = " ".join(words)
    chunks = split_text(text, 100)
    assert_valid_chunks(text, chunks, 100)
    assert " ".join(chunks).split() == words
    assert len(chunks) == greedy_chunk_count(words, 100)  # as few chunks as possible


def test_a_single_overlong_word_is_cut_into_equal_parts() -> None:
    assert split_text("a" * 600, 280) == ["a" * 200] * 3
    chunks = split_text("Look: " + "x" * 300 + " done.", 280)
    assert_valid_chunks("Look: " + "x" * 300 + " done.", chunks, 280)
    assert all(len(chunk) >= SHORT_CHUNK_CHARS for chunk in chunks)


def test_a_trailing_short_sentence_joins_its_neighbour() -> None:
    long = "This is a fairly long sentence that keeps going. " * 5  # 245 chars
    assert split_text(long + "Hi!", 280) == [normalised(long + "Hi!")]


def test_a_short_tail_borrows_a_sentence_rather_than_standing_alone() -> None:
    first = "A" * 180 + "."
    second = "B" * 94 + "."  # first + second fit in 280; adding " Hi!" does not
    chunks = split_text(f"{first} {second} Hi!", 280)
    # Greedy packing would give [first second] + ["Hi!"]: a 3-character chunk that garbles.
    assert chunks == [first, f"{second} Hi!"]


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    text = "Mr. Smith met Dr. J. Jones today. They talked."
    assert split_text(text, 40) == ["Mr. Smith met Dr. J. Jones today.", "They talked."]


def test_cjk_splits_after_sentence_marks() -> None:
    text = "今天天气很好。我们去公园散步吧！你觉得怎么样？" * 6
    chunks = split_text(text, 50)
    assert_valid_chunks(text, chunks, 50)
    assert "".join(chunks) == text
    assert all(chunk[-1] in "。！？" for chunk in chunks)


def test_closing_quotes_stay_with_their_sentence() -> None:
    text = 'She said "Stop right there." Then she left the room quietly.'
    assert split_text(text, 35) == ['She said "Stop right there."', "Then she left the room quietly."]


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError):
        split_text("hello", 0)


def test_tiny_max_chars_still_work() -> None:
    assert split_text("ab cd", 1) == ["a", "b", "c", "d"]
    assert split_text("ab cd", 2) == ["ab", "cd"]


# --------------------------------------------------------------------------- properties

word = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDXYZ0123456789'-éß", min_size=1, max_size=12)
punctuation = st.sampled_from(["", "", "", "", ",", ".", "!", "?", ";", ":", "…", "—", '."', ".)", "?!"])
separator = st.sampled_from([" ", " ", " ", " ", "  ", "\n", "\t", " \n\n ", "\r\n"])
token = st.tuples(word, punctuation).map("".join)
texts = st.lists(st.tuples(token, separator), max_size=150).map(
    lambda pairs: "".join(t + s for t, s in pairs)
)


@settings(max_examples=300, deadline=None)
@given(text=texts, max_chars=st.integers(min_value=16, max_value=300))
def test_chunks_fit_and_preserve_the_words(text: str, max_chars: int) -> None:
    chunks = split_text(text, max_chars)
    assert_valid_chunks(text, chunks, max_chars)
    assert " ".join(chunks) == normalised(text)  # no word longer than 16 chars: no cuts


@settings(max_examples=200, deadline=None)
@given(
    text=st.lists(
        st.tuples(st.one_of(token, st.text(alphabet="xyz", min_size=20, max_size=90)), separator), max_size=60
    ).map(lambda pairs: "".join(t + s for t, s in pairs)),
    max_chars=st.integers(min_value=1, max_value=60),
)
def test_only_overlong_words_are_cut(text: str, max_chars: int) -> None:
    chunks = split_text(text, max_chars)
    assert_valid_chunks(text, chunks, max_chars)
    assert "".join(chunks).replace(" ", "") == "".join(text.split())


cjk = st.text(alphabet="你好世界天气我们。！？，、；：「」 \n", max_size=200)


@settings(max_examples=200, deadline=None)
@given(text=cjk, max_chars=st.integers(min_value=5, max_value=80))
def test_cjk_text_keeps_every_character(text: str, max_chars: int) -> None:
    chunks = split_text(text, max_chars)
    assert_valid_chunks(text, chunks, max_chars)
    assert "".join(chunks).replace(" ", "") == "".join(text.split())


@settings(max_examples=150, deadline=None)
@given(
    sentences=st.lists(
        st.lists(word, min_size=1, max_size=8).map(lambda ws: " ".join(ws) + "."), min_size=1, max_size=30
    ),
    max_chars=st.integers(min_value=100, max_value=300),
)
def test_sentences_that_fit_are_never_split(sentences: list[str], max_chars: int) -> None:
    chunks = split_text(" ".join(sentences), max_chars)
    assert " ".join(chunks) == " ".join(sentences)
    for chunk in chunks:
        assert chunk.endswith(".")
    # Packing: two neighbouring chunks never fit together (else one chunk fewer was possible).
    for left, right in itertools.pairwise(chunks):
        assert len(left) + 1 + len(right) > max_chars
