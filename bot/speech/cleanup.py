"""Text cleanup: what a member types in Discord, turned into what a person would read aloud.

Applied once, before chunking, billing and speaking: the spoken text is what the quota counts,
what the cache is keyed on and what the job card shows. Pure (no discord import): the Discord
layer passes a ``Names`` resolver for the ids in mentions; ``NO_NAMES`` (the CLI) reads them as
"someone", "a role", "a channel".

The rules, in the order they run (the order matters: a URL inside a code block is part of
the code block; a mention inside bold text is resolved before the markers go):

1. Code blocks (```…```) become "a code block"; inline code keeps its text.
2. Masked links ``[text](url)`` become their text; other URLs (``<https://…>`` too) become
   "a link to example.com" (the host, without ``www.``).
3. User, role and channel mentions become display names; ``@everyone``/``@here`` lose the
   ``@``; slash-command mentions ``</name:id>`` become "/name"; timestamps ``<t:…>`` become a
   UTC date; custom emoji ``<:party_parrot:123>`` become their name ("party parrot").
4. Bracketed tags such as ``[laugh]`` are removed: this model reads them aloud.
5. Markdown goes: spoiler bars, bold, italic, underline, strikethrough, headings, subtext,
   quotes, list bullets and stray markers; ``snake_case`` words keep their underscores; what
   a backslash escapes (``\\*``) is kept as the character, never read as markup.
6. Runs of one character are capped at three (``aaaaaaa`` → ``aaa``, ``!!!!!`` → ``!!!``);
   digits are left alone (``1000000`` is a number, not a run).
7. Whitespace collapses to single spaces (newlines included: the chunker splits sentences).

Regular expressions rather than a Markdown library: Discord's flavour (spoilers, mentions,
subtext, no tables or HTML) is not CommonMark, and what matters here is a few exact Discord
forms, each with a test (``tests/speech_cleanup``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

#: Shown when a non-empty text has nothing left to say after cleanup.
NOTHING_TO_SAY = (
    "There is nothing to speak in that text once mentions, links, code blocks and tags like "
    "[laugh] are read as a person would; write some words."
)

CODE_BLOCK = "a code block"
MAX_RUN = 3


class Names(Protocol):
    """Display names for the ids in Discord mentions; None when unknown."""

    def user(self, user_id: int) -> str | None: ...

    def role(self, role_id: int) -> str | None: ...

    def channel(self, channel_id: int) -> str | None: ...


@dataclass(frozen=True)
class NoNames:
    """A resolver that knows nobody (the CLI, or a message from an unknown place)."""

    def user(self, user_id: int) -> str | None:
        return None

    def role(self, role_id: int) -> str | None:
        return None

    def channel(self, channel_id: int) -> str | None:
        return None


NO_NAMES = NoNames()

_CODE_BLOCK = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_INLINE_CODE = re.compile(r"`+([^`]*)`+")
_MASKED_LINK = re.compile(r"\[([^\[\]\n]+)\]\(\s*<?(?:https?://[^\s)>]+)>?\s*\)")
_URL = re.compile(r"<?(https?://[^\s<>]*[^\s<>.,;:!?)\]'\"])>?", re.IGNORECASE)
_USER = re.compile(r"<@!?(\d{1,20})>")
_ROLE = re.compile(r"<@&(\d{1,20})>")
_CHANNEL = re.compile(r"<#(\d{1,20})>")
_COMMAND = re.compile(r"</([\w\- ]{1,100}):\d{1,20}>")
_TIMESTAMP = re.compile(r"<t:(-?\d{1,13})(?::[tTdDfFR])?>")
_EMOJI = re.compile(r"<a?:(\w{1,32}):\d{1,20}>")
_EVERYONE = re.compile(r"@(everyone|here)\b")
_TAG = re.compile(r"\[[^\[\]\n]{0,40}\]")
_SPOILER = re.compile(r"\|\|(.*?)\|\|", re.DOTALL)
_PAIRS = (
    re.compile(r"\*\*(.+?)\*\*", re.DOTALL),
    re.compile(r"__(.+?)__", re.DOTALL),
    re.compile(r"~~(.+?)~~", re.DOTALL),
    re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", re.DOTALL),
    re.compile(r"(?<![\w_])_(?!\s)(.+?)(?<!\s)_(?![\w_])", re.DOTALL),
)
_LINE_MARKUP = re.compile(r"^[ \t]*(?:#{1,3}[ \t]+|-#[ \t]+|>>>[ \t]?|>[ \t]?|[-*][ \t]+)", re.MULTILINE)
_ESCAPABLE = "\\*_~`|>#[]()-:<@"
_ESCAPE = re.compile("\\\\([" + re.escape(_ESCAPABLE) + "])")
_PROTECTED = re.compile("[" + "".join(chr(0xE000 + i) for i in range(len(_ESCAPABLE))) + "]")
_STRAY_MARKUP = re.compile(r"(?:\*\*|__|~~|\|\|)+")
_RUN = re.compile(r"([^\d\s])\1{" + str(MAX_RUN) + ",}")
_SPACE = re.compile(r"\s+")


def link_text(url: str) -> str:
    """``https://www.example.com/a?b`` → ``a link to example.com``."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    host = host.removeprefix("www.")
    return f"a link to {host}" if host else "a link"


def _date(stamp: str) -> str:
    try:
        when = datetime.fromtimestamp(int(stamp), UTC)
    except (OverflowError, OSError, ValueError):
        return "a date"
    return f"{when:%B} {when.day}, {when.year}"


def _emoji_name(name: str) -> str:
    return " ".join(name.replace("_", " ").split())


def clean_text(text: str, names: Names = NO_NAMES) -> str:
    """The spoken form of ``text`` (see the module docstring); may be empty."""
    # Backslash escapes are set aside first so that what they protect is never read as markup.
    out = _ESCAPE.sub(lambda m: chr(0xE000 + _ESCAPABLE.index(m.group(1))), text)
    out = _CODE_BLOCK.sub(f" {CODE_BLOCK} ", out)
    out = _INLINE_CODE.sub(r"\1", out)
    out = _MASKED_LINK.sub(r"\1", out)
    out = _URL.sub(lambda m: link_text(m.group(1)), out)
    out = _USER.sub(lambda m: names.user(int(m.group(1))) or "someone", out)
    out = _ROLE.sub(lambda m: names.role(int(m.group(1))) or "a role", out)
    out = _CHANNEL.sub(lambda m: names.channel(int(m.group(1))) or "a channel", out)
    out = _COMMAND.sub(lambda m: "/" + m.group(1), out)
    out = _TIMESTAMP.sub(lambda m: _date(m.group(1)), out)
    out = _EMOJI.sub(lambda m: f" {_emoji_name(m.group(1))} ", out)
    out = _EVERYONE.sub(r"\1", out)
    out = _TAG.sub(" ", out)
    out = _SPOILER.sub(r"\1", out)
    for pair in _PAIRS:
        out = pair.sub(r"\1", out)
    out = _STRAY_MARKUP.sub(" ", out)
    out = _LINE_MARKUP.sub("", out)
    out = _PROTECTED.sub(lambda m: _ESCAPABLE[ord(m.group(0)) - 0xE000], out)
    out = _RUN.sub(lambda m: m.group(1) * MAX_RUN, out)
    out = _SPACE.sub(" ", out).strip()
    # A name or emoji next to punctuation leaves "word ," behind; tidy the common cases.
    return re.sub(r" ([,.!?;:])", r"\1", out)
