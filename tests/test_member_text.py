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
  ``SubmissionsPaused``, ``InvalidTTSRequest``'s message), and the saved-voice refusals'
  member text (``VoiceError``, ``ClipRejected``, ``VoiceUnavailable``: their second argument).

An exception's own text is never member text either: in ``cogs/`` (outside logs) and in those
``bot/`` texts, ``{exc}``, ``str(exc)`` or ``repr(exc)`` of a caught exception (or of a name
such as ``exc``/``e``) is refused, unless every type that handler catches is one whose message
is itself checked here as member text (``_SHOWN_AS_THEY_ARE``). Plain words come from
``exc.user_message``; the raw text goes to the log with the error id.

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

from tests.source_ast import parse_file

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
#: Saved-voice refusals: ``(code, user_message)``.
_VOICE_REFUSALS = {"VoiceError", "ClipRejected", "VoiceUnavailable"}
#: Exceptions whose ``str()`` a cog may show: their messages are member text checked above
#: (``VoiceUnavailable`` is also cogs.voice.player's, raised with cog text).
_SHOWN_AS_THEY_ARE = _MEMBER_REFUSALS | _VOICE_REFUSALS
#: Names that hold an exception even outside an ``except … as`` (a helper's parameter).
_EXCEPTION_NAMES = {"exc", "e", "err", "error"}


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
    tree = parse_file(path)
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
    tree = parse_file(path)
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
            if _call_name(node) in _VOICE_REFUSALS and len(node.args) > 1:
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


def _caught(tree: ast.AST) -> dict[int, set[str]]:
    """For each name use inside an ``except T as name`` body: the type names ``T`` covers."""
    caught: dict[int, set[str]] = {}
    for handler in ast.walk(tree):
        if not isinstance(handler, ast.ExceptHandler) or not handler.name or handler.type is None:
            continue
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names = {t.attr if isinstance(t, ast.Attribute) else t.id if isinstance(t, ast.Name) else "?"
                 for t in types}
        for statement in handler.body:
            for node in ast.walk(statement):
                if isinstance(node, ast.Name) and node.id == handler.name:
                    caught[id(node)] = names
    return caught


def _shown_exceptions(tree: ast.AST, nodes: Iterator[ast.AST]) -> Iterator[tuple[int, str]]:
    """``{exc}``, ``str(exc)``, ``repr(exc)`` among ``nodes`` where ``exc`` is an exception."""
    caught = _caught(tree)
    for node in nodes:
        if isinstance(node, ast.FormattedValue):
            value = node.value
        elif isinstance(node, ast.Call) and _call_name(node) in {"str", "repr"} and node.args:
            value = node.args[0]
        else:
            continue
        if not isinstance(value, ast.Name):
            continue
        types = caught.get(id(value))
        if types is None and value.id not in _EXCEPTION_NAMES:
            continue  # not an exception
        if types is not None and types <= _SHOWN_AS_THEY_ARE:
            continue  # its message is member text, checked by the jargon test
        yield node.lineno, ast.unparse(node)


def _cog_shown_exceptions(path: Path) -> Iterator[tuple[int, str]]:
    tree = parse_file(path)
    skipped = _skipped_nodes(tree)
    yield from _shown_exceptions(tree, (n for n in ast.walk(tree) if id(n) not in skipped))


def _bot_shown_exceptions(path: Path) -> Iterator[tuple[int, str]]:
    """In ``bot/``: the exceptions shown through ``user_message=`` or a voice refusal's text."""
    tree = parse_file(path)
    member: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            member += [k.value for k in node.keywords if k.arg == "user_message"]
            if _call_name(node) in _VOICE_REFUSALS and len(node.args) > 1:
                member.append(node.args[1])
    yield from _shown_exceptions(tree, (part for expr in member for part in ast.walk(expr)))


def _all_shown_exceptions() -> list[str]:
    found = []
    for path in sorted((ROOT / "cogs").rglob("*.py")):
        found += [f"{path.relative_to(ROOT)}:{line}: {code}" for line, code in _cog_shown_exceptions(path)]
    for path in sorted((ROOT / "bot").rglob("*.py")):
        if "emulator" not in path.parts:
            found += [f"{path.relative_to(ROOT)}:{line}: {code}"
                      for line, code in _bot_shown_exceptions(path)]
    return found


def test_the_walk_sees_the_member_texts() -> None:
    texts = {text for _, _, text in _member_strings()}
    # A sample of what members do read, from both trees: if the walk missed these, it would
    # pass by checking nothing.
    assert any("Your /speak failed" in t for t in texts)
    assert any("out of credit" in t for t in texts)
    assert any(t.startswith("Only moderators") for t in texts)
    assert any("could not make this audio" in t for t in texts)
    assert any("is private to its owner" in t for t in texts)  # a saved-voice refusal
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


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("try:\n    pass\nexcept AudioError as exc:\n    post(f'cannot be posted: {exc}')", True),
        ("try:\n    pass\nexcept OSError as e:\n    text = str(e)", True),
        ("def fail(exc):\n    reply(f'failed: {exc}')", True),
        ("try:\n    pass\nexcept AudioError as exc:\n    post(f'not posted: {exc.user_message}')", False),
        ("try:\n    pass\nexcept AudioError as exc:\n    log.warning(f'job: {exc}')", False),
        ("try:\n    pass\nexcept PolicyError as exc:\n    text = str(exc)", False),
    ],
)
def test_the_exception_check_catches_what_it_must(source: str, shown: bool) -> None:
    tree = ast.parse(source)
    skipped = _skipped_nodes(tree)
    found = list(_shown_exceptions(tree, (n for n in ast.walk(tree) if id(n) not in skipped)))
    assert bool(found) is shown, found


def test_the_exception_check_sees_voice_refusals() -> None:
    tree = ast.parse("try:\n    pass\nexcept AudioError as exc:\n    raise ClipRejected('bad', str(exc))")
    member = [part for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and _call_name(node) in _VOICE_REFUSALS for part in ast.walk(node.args[1])]
    assert list(_shown_exceptions(tree, iter(member)))


def test_no_member_text_shows_an_exception() -> None:
    offenders = _all_shown_exceptions()
    assert not offenders, (
        "an exception's own text shown to members (use exc.user_message; log the detail):\n"
        + "\n".join(offenders)
    )
