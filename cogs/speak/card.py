"""What /speak says: the live job card, the audio message, refusals and alerts. Pure text.

Everything here is a pure function of plain values (no discord objects, no I/O), so the
wording is unit-tested on its own and the cog only decides *when* to show it.

Decisions:

- The card is one public message: a header (who asked, the output, the settings), a quote of
  the text, and a ``Status:`` line that moves through ``quota ok`` → ``queued, position 3`` →
  ``processing… 4 s`` → ``done`` / ``failed (error id …)`` / ``cancelled``. An optional
  ``Voice:`` line carries the voice player's state ("playing in #Lounge").
- The card shows progress and the result only. What a request costs (``cost_note``) and why
  it failed (``failure_message``: the plain reason, whether the quota was refunded, the error
  id) go privately to the requester, each said once. A charged failure never says "try again":
  a second attempt would be charged again. A result from the audio cache says so on the card
  (``from cache``; a partial hit ``2 of 3 parts from cache``), without a price: that it was
  free, or what the other parts cost, is in the requester's private cost note too.
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


def status_quota_ok(requests: int, from_cache: int = 0) -> str:
    """``requests``: the parts to make; ``from_cache``: the parts the audio cache has (free)."""
    if from_cache:
        return f"quota ok: {plural(requests, 'part')} to make, {from_cache} from cache"
    return "quota ok" if requests <= 1 else f"quota ok: {requests} parts"


def cost_note(requests: int, cost: Decimal, from_cache: int = 0) -> str:
    """Private to the requester, once the quota is reserved: what it really costs (the parts
    from the audio cache cost nothing and are not counted)."""
    if requests == 0:
        return "This /speak came from the audio cache: it is free and uses none of your quota."
    cached = ""
    if from_cache:
        cached = (f" {plural(from_cache, 'part')} of this text {'was' if from_cache == 1 else 'were'} "
                  "already in the audio cache, free;")
    return (
        f"This /speak uses {plural(requests, 'request')} of your quota ({money(cost)});{cached} "
        "it is given back if the TTS service does not charge for it."
    )


def status_waiting(position: int) -> str:
    return f"queued, position {position}"


def status_submitted(submitted: int, chunks: int) -> str:
    return "queued" if chunks <= 1 else f"queued ({submitted}/{chunks} parts sent)"


def status_processing(elapsed: float, done_chunks: int = 0, chunks: int = 1) -> str:
    parts = f" ({done_chunks}/{chunks} parts ready)" if chunks > 1 else ""
    return f"processing… {seconds(elapsed)}{parts}"


def status_from_cache() -> str:
    """Every chunk was in the audio cache: no request, no quota (the card names no price)."""
    return "from cache"


def status_partly_cached(from_cache: int, chunks: int) -> str:
    """Some parts were in the audio cache: how many (what the others cost is private)."""
    return f"{from_cache} of {chunks} parts from cache"


def status_done(
    duration: float, *, where: str | None = None, cached: bool = False, from_cache: int = 0,
    chunks: int = 1,
) -> str:
    """``cached``: all from the cache; ``from_cache`` of ``chunks``: a partial hit."""
    text = f"done: {seconds(duration)} of audio"
    if cached:
        text += f" ({status_from_cache()})"
    elif from_cache:
        text += f" ({status_partly_cached(from_cache, chunks)})"
    return f"{text}, {where}" if where else text


def error_id(job_id: str) -> str:
    """The id a member quotes and the log has: a failed job's log lines carry its id."""
    return job_id[:8]


def status_failed(job_id: str) -> str:
    return f"failed (error id `{error_id(job_id)}`)"


def failure_message(user_message: str, refunded: bool, job_id: str) -> str:
    """Private to the requester: why, what it cost, and the error id."""
    if refunded:
        money_note = "Nothing was charged (your quota was given back), so you can try again."
    else:
        money_note = (
            "The TTS service charges for requests that reach it, so this one counts against "
            "your quota; the same request would likely fail the same way."
        )
    return f"Your /speak failed: {user_message} {money_note} (error id `{error_id(job_id)}`)"


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


def quota_refusal(user_message: str, resets_at: datetime | None, code: str = "quota") -> str:
    """The refusal with the reset moment in the member's own time zone, said once: the quota
    service's text already says "resets in 3 h 12 min"; this adds the clock time."""
    if resets_at is None or code == "cooldown":
        return user_message
    stamp = int(resets_at.timestamp())
    return f"{user_message.rstrip().removesuffix('.')} (at <t:{stamp}:t> your time)."


def out_of_credit_alert(requester: str, probe_seconds: float) -> str:
    """For every server's alert channel when the provider says the account is out of credit
    (402). Sent once per pause to each server that has an alert channel. No secrets."""
    return (
        "⚠️ **Text-to-speech is paused on every server: the bot's Chatterbox TTS account is out "
        f"of credit** (noticed on a /speak by {requester}).\n"
        "Nobody's quota was charged for the refused requests. The bot's owner has to top up the "
        f"account; the bot tries one request every {seconds(probe_seconds)} and resumes by itself "
        "once it works (or at once with /quota resume-wallet, for the bot's owner)."
    )


def out_of_credit_refusal(user_message: str, moderators_told: bool) -> str:
    """The member's side of the pause: "moderators have been told" only where it is true."""
    if moderators_told:
        return f"{user_message} This server's moderators have been told."
    return user_message


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
