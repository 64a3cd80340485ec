"""Which messages are read, and the text that is spoken for one (pure functions).

Decisions:

* **Skipped silently**: messages from bots (this one included) and webhooks, messages that
  look like a command for some bot (a prefix such as ``!``, ``/``, ``?``, ``$``, ``;`` or ``.``
  directly followed by a word: ``!play``, ``/roll``), and messages with nothing to read
  (only an attachment, a sticker or an embed). Skipping is not a refusal: nothing is reacted.
* **Cut, not refused**: a text longer than ``AUTOREAD_MAX_CHARS`` (default 300) is cut at the
  last word boundary before the limit and ends with "and more", so a wall of text costs one
  short read instead of many chunks.
* **Announcing**: with ``announce`` on, "<name> said" is spoken before the message, as its own
  request in the bot's built-in voice, so the audio cache serves every later announcement of
  the same member for free (``bot.autoread.reader``).
* **Cleaning** goes through a ``Cleaner`` (``bot.autoread.cleaning``) before the cut, so the
  cap counts what is spoken, not the markup.
* **Where the author must be** (``voice_problem``): in a voice channel; in the configured
  voice channel when one is set; in the bot's channel when the bot is already in voice in
  that server; when the bot is not in voice it joins the author only if the server allows
  "join on first speaker".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

AND_MORE = "and more"
_COMMAND = re.compile(r"^[!/?$;.][A-Za-z]")


class Names(Protocol):
    """Display names for the ids in Discord mentions; None when unknown."""

    def user(self, user_id: int) -> str | None: ...

    def role(self, role_id: int) -> str | None: ...

    def channel(self, channel_id: int) -> str | None: ...


Cleaner = Callable[[str, Names], str]


@dataclass(frozen=True)
class IncomingMessage:
    """What the reader needs of one Discord message (built by the cog)."""

    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    author_name: str
    content: str
    role_ids: tuple[int, ...] = ()
    author_is_bot: bool = False
    attachments: int = 0


def skip_reason(message: IncomingMessage) -> str | None:
    """Why ``message`` is not read at all (None: it is a candidate)."""
    if message.author_is_bot:
        return "bot"
    content = message.content.strip()
    if not content:
        return "attachment only" if message.attachments else "empty"
    if _COMMAND.match(content):
        return "command"
    return None


def cut(text: str, max_chars: int) -> str:
    """``text`` if it fits in ``max_chars``, else its words up to the limit plus "and more"."""
    if len(text) <= max_chars:
        return text
    room = max(1, max_chars - len(AND_MORE) - 1)
    head = text[:room]
    if " " in head and not text[room].isspace():
        head = head.rsplit(" ", 1)[0]
    head = head.rstrip(" ,;:-")
    return f"{head} {AND_MORE}" if head else AND_MORE


def spoken_text(content: str, *, names: Names, cleaner: Cleaner, max_chars: int) -> str:
    """What is spoken for a message: cleaned, then cut. Empty when nothing is left to say."""
    cleaned = " ".join(cleaner(content, names).split())
    if not cleaned:
        return ""
    return cut(cleaned, max_chars)


def announcement(speaker: str, *, names: Names, cleaner: Cleaner) -> str | None:
    """"<speaker> said", spoken before a message when the server announces speakers (a
    display name may hold markdown or emoji, so it is cleaned too); None if nothing is left."""
    name = " ".join(cleaner(speaker, names).split())
    return f"{name} said" if name else None


def voice_problem(
    *,
    author_channel_id: int | None,
    bot_channel_id: int | None,
    configured_channel_id: int | None,
    join_on_first_speaker: bool,
) -> str | None:
    """Why the author's message cannot be read in voice now (None: it can)."""
    if author_channel_id is None:
        return "the author is not in a voice channel"
    if configured_channel_id is not None and author_channel_id != configured_channel_id:
        return "the author is not in the reading voice channel"
    if bot_channel_id is not None:
        if author_channel_id != bot_channel_id:
            return "the author is not in the bot's voice channel"
        return None
    if not join_on_first_speaker:
        return "the bot is not in voice and does not join on its own"
    return None
