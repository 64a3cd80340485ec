"""The words of ``/help`` and ``/about``. Pure functions of plain values, unit-tested alone.

Decisions:

- ``/help`` answers the questions a member has before a first ``/speak``: what it does, what
  it costs them (their own limits on this server, as ``/quota me`` resolves them), why a text
  can be refused (the two text limits: the bot's longest text for one /speak, and this
  server's limit per request), and how voices work — including that a voice may only be
  cloned from a recording of someone who agreed to it. The options it names are the /speak
  command's own (a test reads them from the command tree).
- ``/about`` says what the bot is (version), what it keeps about a member (saved voice clips
  included, and how ``/privacy forget-me`` deletes them) and who sees the text (the TTS
  provider), and where the source is. The source address is a setting
  (``ABOUT_SOURCE_URL``): the code is MIT-licensed and an operator may run a modified copy, so
  no address is hard-coded.
- Both are ephemeral: they answer one member and clutter no channel.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.quotas.policy import ResolvedPolicy


@dataclass(frozen=True)
class HelpFacts:
    """What /help needs to know about this bot and this member's server."""

    max_text_chars: int  # the bot's longest text for one /speak (CHATTERBOX_MAX_TEXT_CHARS, ≤ 2000)
    voice_max_seconds: float
    voice_max_mb: float
    policy: ResolvedPolicy | None  # None outside a server
    exempt: bool = False


def _n(value: int) -> str:
    return f"{value:,}"


def help_text(facts: HelpFacts) -> str:
    lines = [
        "**Chatterbox TTS** turns your text into speech with the Chatterbox text-to-speech service.",
        "",
        "**Speak:** `/speak text:…` posts the audio here; `output: voice` plays it in your voice "
        "channel, `both` does both. `exaggeration` (0 to 1) is emotion, `temperature` (0.1 to 1) "
        "randomness, `cfg` (0 to 2) pacing. The card shows the progress; Cancel stops a request "
        "before it is sent.",
        "",
        "**How long a text may be:** two limits apply, the smaller wins. "
        f"The bot takes at most {_n(facts.max_text_chars)} characters in one /speak (long text is "
        "split into sentence parts, each part is one request).",
    ]
    if facts.policy is None:
        lines.append("Each server also sets its own limit per request and per day; use /help there.")
    elif facts.exempt:
        lines.append("This server exempts your role from its per-member limits.")
    else:
        p = facts.policy
        lines += [
            f"This server allows you {_n(p.max_chars_per_request)} characters per request.",
            "",
            f"**Your limits here:** {_n(p.requests_per_day)} requests and {_n(p.chars_per_day)} "
            f"characters a day, {p.max_in_flight} at a time, {p.cooldown_seconds} s between "
            "requests. `/quota me` shows what is left today.",
        ]
    lines += [
        "",
        "**Voices:** without one you get the default voice. `voice:` picks a saved voice (yours, "
        "one shared here, or a server voice); attach a clip as `clip:` to speak once in that voice "
        f"(audio, up to {facts.voice_max_seconds:g} s and {facts.voice_max_mb:g} MB; the first ~10 s "
        "of clean speech matter most).",
        "**Saved voices:** `/voices add` saves a voice from a clip (you confirm consent), "
        "`/voices list` shows the ones you can use, `/voices share` shares yours with this server, "
        "`/voices default` sets what /speak uses when you pick none, `/voices delete` removes one.",
        "**Consent:** only use a recording of your own voice, or of someone who has agreed to have "
        "their voice cloned. Moderators can revoke a voice here (`/voices revoke`) and stop members "
        "who misuse this (`/quota block`).",
        "",
        "`/about` tells what the bot stores and where its source is.",
    ]
    return "\n".join(lines)


def about_text(version: str, source_url: str | None) -> str:
    source = (
        f"Source: {source_url} (MIT license)."
        if source_url
        else "Source: the MIT-licensed chatterbox-discord project; this bot's owner has not "
        "published an address for their copy."
    )
    return "\n".join([
        f"**Chatterbox TTS for Discord** {version}",
        "",
        "**Privacy:** what you ask to be spoken is sent to the Chatterbox TTS service (and a link "
        "to the voice clip used, when there is one). The bot keeps, in its own database, each "
        "request's text, settings, your user id and name, the server and channel, and your daily "
        "usage for the quotas; moderators' quota changes are kept in a history. The voices you save "
        "with `/voices add` keep their clip in the database (and, on bots without a web address, as a "
        "file in the server's voice storage channel) until you delete them. Nothing is shared with "
        "anyone else. `/privacy forget-me` deletes your saved voices, defaults and the text of your past "
        "requests; the bot's owner can delete the rest on request.",
        "",
        source,
    ])
