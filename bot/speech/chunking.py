# ruff: noqa: RUF001, RUF002  (full-width CJK punctuation and dashes are what this module is about)
"""Split long text into chunks Chatterbox can speak well.

Chatterbox degrades past ~300 characters per call and garbles very short inputs, and every
chunk is a billed request. So ``split_text``:

* normalises whitespace (any run of whitespace, newlines included, becomes one space);
* breaks only between sentences (``. ! ? …`` and CJK ``。！？``; a line break also ends a
  sentence) as long as every sentence fits, packing consecutive sentences into one chunk;
* splits a sentence longer than ``max_chars`` at clause punctuation (``, ; : — –`` and CJK
  ``，、；：``), then between words; a single word longer than ``max_chars`` is the only thing
  ever cut, into equal parts;
* among the splits allowed by those rules, picks (by dynamic programming, not greedily) the
  one with the fewest chunks, then the fewest very short chunks (< 20 characters), then the
  most natural breaks, then the most even chunk sizes. "Fewest chunks" comes first because
  each chunk costs a request; avoiding very short chunks comes next because they garble.

Chunks are substrings of the normalised text: joining them with single spaces gives it back,
except where CJK text (which has no spaces) or an over-long word was cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SHORT_CHUNK_CHARS = 20

_SENTENCE_ENDS = frozenset(".!?…‼⁇⁈⁉。！？")
_CLAUSE_ENDS = frozenset(",;:—–，、；：")
# Marks that end a CJK sentence or clause; CJK has no spaces, so these split inside a token.
_CJK_MARKS = frozenset("。！？，、；：")
_CLOSERS = "\"'”’»)]}」』）"
_OPENERS = "\"'“‘«([{「『（"
# A period after these is not the end of a sentence (checked lower-case, openers stripped).
_ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "vs.", "e.g.", "i.e."})
_INITIAL = re.compile(r"[A-Z]\.")

# Cost of breaking before a unit; the packer minimises their sum after the chunk count.
_SENTENCE_BREAK = 0
_CLAUSE_BREAK = 1
_WORD_BREAK = 3
_HARD_BREAK = 10


@dataclass(frozen=True, slots=True)
class _Atom:
    """A word, or a piece of CJK text ending at a mark. ``glued``: no space before it."""

    text: str
    glued: bool


@dataclass(frozen=True, slots=True)
class _Unit:
    """Something never split further; ``cost`` is the badness of starting a chunk with it."""

    text: str
    glued: bool
    cost: int


def split_text(text: str, max_chars: int) -> list[str]:
    """Split ``text`` into chunks of at most ``max_chars`` characters (see the module doc)."""
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    units: list[_Unit] = []
    for sentence in _sentences(text):
        if _length(sentence) <= max_chars:
            units.append(_Unit(_join(sentence), sentence[0].glued, _SENTENCE_BREAK))
        else:
            units.extend(_sentence_units(sentence, max_chars))
    return _pack(units, max_chars)


def _sentences(text: str) -> list[list[_Atom]]:
    sentences: list[list[_Atom]] = []
    for line in text.splitlines():
        current: list[_Atom] = []
        for token in line.split():
            for index, piece in enumerate(_split_cjk(token)):
                current.append(_Atom(piece, glued=index > 0))
                if _ends_sentence(piece):
                    sentences.append(current)
                    current = []
        if current:
            sentences.append(current)
    return sentences


def _split_cjk(token: str) -> list[str]:
    """Cut a whitespace-free token after each run of CJK marks (and closing quotes)."""
    pieces: list[str] = []
    start = index = 0
    while index < len(token):
        if token[index] in _CJK_MARKS:
            index += 1
            while index < len(token) and (token[index] in _CJK_MARKS or token[index] in _CLOSERS):
                index += 1
            if index < len(token):
                pieces.append(token[start:index])
                start = index
        else:
            index += 1
    pieces.append(token[start:])
    return pieces


def _core(piece: str) -> str:
    return piece.rstrip(_CLOSERS)


def _ends_sentence(piece: str) -> bool:
    core = _core(piece)
    if not core or core[-1] not in _SENTENCE_ENDS:
        return False
    if core.endswith("."):
        word = core.lstrip(_OPENERS)
        if word.lower() in _ABBREVIATIONS or _INITIAL.fullmatch(word):
            return False
    return True


def _ends_clause(piece: str) -> bool:
    core = _core(piece)
    return bool(core) and (core[-1] in _CLAUSE_ENDS or core[-1] in _SENTENCE_ENDS or core == "-")


def _length(atoms: list[_Atom]) -> int:
    return sum(len(atom.text) for atom in atoms) + sum(1 for atom in atoms[1:] if not atom.glued)


def _join(atoms: list[_Atom]) -> str:
    parts = [atoms[0].text]
    for atom in atoms[1:]:
        if not atom.glued:
            parts.append(" ")
        parts.append(atom.text)
    return "".join(parts)


def _sentence_units(sentence: list[_Atom], max_chars: int) -> list[_Unit]:
    """Break an over-long sentence into its words (over-long words into equal parts)."""
    units: list[_Unit] = []
    for index, atom in enumerate(sentence):
        if index == 0:
            cost = _SENTENCE_BREAK
        elif _ends_clause(sentence[index - 1].text):
            cost = _CLAUSE_BREAK
        elif not atom.glued:
            cost = _WORD_BREAK
        else:
            cost = _HARD_BREAK
        if len(atom.text) <= max_chars:
            units.append(_Unit(atom.text, atom.glued, cost))
            continue
        count = -(-len(atom.text) // max_chars)
        size = -(-len(atom.text) // count)
        for offset in range(0, len(atom.text), size):
            first = offset == 0
            units.append(
                _Unit(
                    atom.text[offset : offset + size],
                    atom.glued if first else True,
                    cost if first else _HARD_BREAK,
                )
            )
    return units


def _pack(units: list[_Unit], max_chars: int) -> list[str]:
    """Group consecutive units into chunks, minimising the cost tuple described above.

    ``best[j]`` is the cheapest way to chunk ``units[:j]``; each chunk ``units[i:j]`` is
    tried for every ``i`` that keeps it within ``max_chars`` (every unit fits on its own).
    """
    short = min(SHORT_CHUNK_CHARS, max_chars // 2)
    count = len(units)
    best: list[tuple[int, int, int, int] | None] = [None] * (count + 1)
    best[0] = (0, 0, 0, 0)
    start_of: list[int] = [0] * (count + 1)
    for end in range(1, count + 1):
        length = 0
        for begin in range(end - 1, -1, -1):
            if begin < end - 1 and not units[begin + 1].glued:
                length += 1
            length += len(units[begin].text)
            if length > max_chars:
                break
            before = best[begin]
            assert before is not None
            cost = (
                before[0] + 1,
                before[1] + (length < short),
                before[2] + (units[begin].cost if begin else 0),
                before[3] + (max_chars - length) ** 2,
            )
            current = best[end]
            if current is None or cost < current:
                best[end] = cost
                start_of[end] = begin
    chunks: list[str] = []
    end = count
    while end > 0:
        begin = start_of[end]
        chunk = units[begin:end]
        chunks.append(_join([_Atom(unit.text, unit.glued) for unit in chunk]))
        end = begin
    chunks.reverse()
    return chunks
