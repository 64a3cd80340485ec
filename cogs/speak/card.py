"""What /speak says: the live job card, the audio message, refusals and alerts. Pure text.

Everything here is a pure function of plain values (no discord objects, no I/O), so the
wording is unit-tested on its own and the cog only decides *when* to show it.

Decisions:

- The card is one message: a header (who asked, the output, the settings), a quote of the
  text, and a ``Status:`` line that moves through ``quota ok: 2 requests, $0.02`` →
  ``queued, position 3`` → ``processing… 4 s`` → ``done`` / ``failed: …`` / ``cancelled``.
  An optional ``Voice:`` line carries the voice player's state ("playing in #Lounge").
- The member's text is quoted, shortened and stripped of markdown so it cannot reshape the
  card; mentions stay as written but every message is sent with ``AllowedMentions.none()``,
  so nobody is pinged.
- Quota refusals add Discord timestamps (``<t:…:R>``) for the reset time, which every member
  sees in their own time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.formats import money, plural, seconds

QUOTE_CHARS = 150
MAX_MESSAGE = 2000

_MARKDOWN = re.compile(r"([\\*_~`|>#\[\]()-])")


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """One line of the member's text, markdown-escaped, cut at ``limit`` characters."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return _MARKDOWN.sub(r"\\\1", flat)





def settings_text(exaggeration: float, temperature: float, cfg: float, voice_name: str | None) -> str:
    voice = f"voice: {quote(voice_name, 60)}" if voice_name else "default voice"
    return f"exaggeration {exaggeration:g} · temperature {temperature:g} · cfg {cfg:g} · {voice}"


# --------------------------------------------------------------------------- status lines


def status_starting() -> str:
    return "checking quota…"


def status_quota_ok(requests: int, cost: Decimal) -> str:
    return f"quota ok: {plural(requests, 'request')}, {money(cost)}"


def status_waiting(position: int) -> str:
    return f"queued, position {position}"


def status_submitted(submitted: int, chunks: int) -> str:
    return "queued" if chunks <= 1 else f"queued ({submitted}/{chunks} parts sent)"


def status_processing(elapsed: float, done_chunks: int = 0, chunks: int = 1) -> str:
    parts = f" ({done_chunks}/{chunks} parts ready)" if chunks > 1 else ""
    return f"processing… {seconds(elapsed)}{parts}"


def status_from_cache() -> str:
    """Every chunk was in the audio cache: no request, no quota."""
    return "from cache, $0"


def status_done(duration: float, *, where: str | None = None, cached: bool = False) -> str:
    text = f"done: {seconds(duration)} of audio"
    if cached:
        text += f" ({status_from_cache()})"
    return f"{text}, {where}" if where else text


def status_failed(user_message: str, refunded: bool) -> str:
    money_note = "your quota was refunded" if refunded else "the request was charged"
    return f"failed: {user_message} ({money_note})"


def status_cancelled(refunded: bool) -> str:
    if refunded:
        return "cancelled (your quota was refunded)"
    return "cancelled (it had already been sent to the TTS service, so the quota was used)"


# --------------------------------------------------------------------------- messages


@dataclass
class Card:
    """The live job card's content; ``status`` and ``voice`` change as the job runs."""

    requester: str  # a mention or a name
    text: str
    output: str
    exaggeration: float
    temperature: float
    cfg: float
    voice_name: str | None = None
    status: str = status_starting()
    voice: str | None = None
    note: str | None = None

    def render(self) -> str:
        lines = [
            f"🗣️ **/speak** by {self.requester} · output: {self.output}",
            f"> {quote(self.text)}",
            settings_text(self.exaggeration, self.temperature, self.cfg, self.voice_name),
            f"**Status:** {self.status}",
        ]
        if self.voice:
            lines.append(f"**Voice:** {self.voice}")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)[:MAX_MESSAGE]


def audio_message(
    *,
    requester: str,
    text: str,
    duration: float,
    exaggeration: float,
    temperature: float,
    cfg: float,
    voice_name: str | None,
    note: str = "",
) -> str:
    """The text that goes with the posted audio file."""
    lines = [
        f"🔊 {requester} asked for {seconds(duration)} of speech:",
        f"> {quote(text)}",
        settings_text(exaggeration, temperature, cfg, voice_name),
    ]
    if note:
        lines.append(note)
    return "\n".join(lines)[:MAX_MESSAGE]


def quota_refusal(user_message: str, resets_at: datetime | None) -> str:
    if resets_at is None:
        return user_message
    stamp = int(resets_at.timestamp())
    return f"{user_message}\nYour quota resets <t:{stamp}:R> (at <t:{stamp}:t>)."


def out_of_credit_alert(requester: str, probe_seconds: float) -> str:
    """For the moderators' alert channel when the provider answers 402. No secrets."""
    return (
        "⚠️ **Text-to-speech is paused: the Chatterbox TTS account is out of credit** "
        f"(the service answered 402 Insufficient Balance to a /speak by {requester}).\n"
        "Nobody's quota was charged for the refused requests. Top up the account; the bot "
        f"tries one request again every {seconds(probe_seconds)} and resumes by itself when it works."
    )


def budget_alert(reason: str, requester: str) -> str:
    """For the moderators' alert channel when the server's daily budget or cost cap refuses
    a /speak (sent once per server and quota day)."""
    return (
        f"⚠️ **This server's text-to-speech budget is used up** (a /speak by {requester} was "
        f"refused): {reason}\nRaise or remove it with /quota budget; /quota usage shows who used it."
    )


def voice_fallback_note(reason: str) -> str:
    return f"Posted instead because {reason.rstrip('.')}."


VOICE_UNAVAILABLE = "voice output is not available; posted the file instead"
