"""No jargon in what a member reads: every user-facing string in cogs/ and bot/ is checked.

Which strings a member can see, found by reading the source (``ast``), not by a list kept by
hand, so a new message is checked the day it is written:

- in ``cogs/``: every string literal (f-string parts included) except docstrings, log calls,
  the ids and patterns of components (``custom_id``, ``template``) and what is raised as a
  programming error (``RuntimeError``, ``ValueError``, ``TypeError``, ``AssertionError``,
  ``NotImplementedError``, ``KeyError``) — the cogs speak to members and moderators;
- in ``bot/``: the texts meant for them: ``default_user_message`` and ``*_USER_MESSAGE`` /
  ``*_MESSAGE`` constants, every ``user_message=`` argument, and the first argument of the
  refusals the cogs show as they are (``QuotaExceeded``, ``PolicyError``, ``GuildPaused``,
  ``SubmissionsPaused``, ``InvalidTTSRequest``'s message).

Jargon: tool and protocol names (FFmpeg, HTTP, JSON, stderr), HTTP status codes, exception
class names, "Traceback", "None". Member text may name Discord's own permission names and
the bot's own commands; it may not make a member decode an error.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_JARGON = re.compile(
    r"\bffmpeg\b|\bhttps?\b(?!://)|\bHTTP\b|\bJSON\b|\bstderr\b|\bstdout\b|\bTraceback\b|(?-i:\bNone\b)"
    r"|\b(?:[1-5]\d{2})\s+(?:Bad|Unauthorized|Payment|Forbidden|Not Found|Too Many|Internal|Insufficient)"
    r"|\b(?:40[0-9]|41[0-9]|42[0-9]|50[0-4])\b(?!\s*(?:characters?|requests?|s\b|seconds?|MB|KB|kbps|ms))"
    r"|\b[A-Z][a-z]+(?:[A-Z][a-z]+)*(?:Error|Exception)\b",
    re.IGNORECASE,
)
_LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
_PROGRAMMING_ERRORS = {
    "RuntimeError", "ValueError", "TypeError", "AssertionError", "NotImplementedError", "KeyError",
    "FFmpegProcessError",  # discord.py's, carried to the log by the voice player
}
_CODE_CALLS = {"getLogger", "getattr", "hasattr", "setattr", "get_cog"}
_MEMBER_REFUSALS = {"QuotaExceeded", "PolicyError", "GuildPaused", "SubmissionsPaused", "NotModerator",
                    "NotBotOwner"}


def _text(node: ast.expr) -> str:
    """A literal's text; an f-string's literal parts with ``{…}`` for each value."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) if isinstance(v, ast.Constant) else "{…}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return ""


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """Ids of literal nodes that are not member text (docstrings, logs, ids, internal errors)."""
    skipped: set[int] = set()

    def skip(node: ast.AST) -> None:
        skipped.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip(body[0])
        elif isinstance(node, ast.Call):
            name = _call_name(node)
            if name in _LOG_METHODS and isinstance(node.func, ast.Attribute):
                skip(node)
            elif name in _PROGRAMMING_ERRORS or name in _CODE_CALLS:
                skip(node)
            for keyword in node.keywords:
                if keyword.arg in {"custom_id", "template", "name", "group_name"}:
                    skip(keyword.value)
        elif isinstance(node, ast.Subscript | ast.Compare):
            # dict keys and comparisons (`kind == "voice"`) are code, not text
            skip(node.slice if isinstance(node, ast.Subscript) else node)
    return skipped


def _strings(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _skipped_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.JoinedStr):
            skipped.update(id(v) for v in node.values)
            yield node.lineno, _text(node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def _bot_member_strings(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if node.value is not None and any(
                n == "default_user_message" or n.endswith(("USER_MESSAGE", "_MESSAGE")) for n in names
            ):
                yield node.lineno, _text(node.value)
        elif isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "user_message" and keyword.value is not None:
                    for part in ast.walk(keyword.value):
                        if isinstance(part, ast.Constant | ast.JoinedStr) and _text(part):  # type: ignore[arg-type]
                            yield part.lineno, _text(part)  # type: ignore[arg-type]
            if _call_name(node) in _MEMBER_REFUSALS and node.args:
                yield node.args[0].lineno, _text(node.args[0])
            if _call_name(node) == "InvalidTTSRequest" and len(node.args) > 1:
                yield node.args[1].lineno, _text(node.args[1])


def _member_strings() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted((ROOT / "cogs").rglob("*.py")):
        found += [(str(path.relative_to(ROOT)), line, text) for line, text in _strings(path)]
    for path in sorted((ROOT / "bot").rglob("*.py")):
        if "emulator" in path.parts:
            continue  # a developer's tool, not the bot
        found += [(str(path.relative_to(ROOT)), line, text) for line, text in _bot_member_strings(path)]
    return [(p, line, text) for p, line, text in found if text.strip()]


def test_the_walk_sees_the_member_texts() -> None:
    texts = {text for _, _, text in _member_strings()}
    # A sample of what members do read, from both trees: if the walk missed these, it would
    # pass by checking nothing.
    assert any("Your /speak failed" in t for t in texts)
    assert any("out of credit" in t for t in texts)
    assert any(t.startswith("Only moderators") for t in texts)
    assert any("could not make this audio" in t for t in texts)
    assert len(texts) > 150


@pytest.mark.parametrize(
    "sample",
    ["FFmpeg could not encode", "HTTP 404", "answered 402 Insufficient Balance", "a ValueError",
     "Traceback (most recent call last)", "audio_url could not be fetched: http 404"],
)
def test_the_jargon_pattern_catches_what_it_must(sample: str) -> None:
    assert _JARGON.search(sample)


@pytest.mark.parametrize(
    "sample",
    ["This text is 400 characters", "Only moderators (Manage Server permission) can use /quota",
     "resets in 3 h", "a https://example.org link", "The TTS service had an internal error."],
)
def test_the_jargon_pattern_leaves_plain_words_alone(sample: str) -> None:
    assert not _JARGON.search(sample)


def test_no_member_text_has_jargon() -> None:
    offenders = [f"{path}:{line}: {text!r}" for path, line, text in _member_strings() if _JARGON.search(text)]
    assert not offenders, "member-facing text with jargon:\n" + "\n".join(offenders)
