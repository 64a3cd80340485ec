"""/speak's own checks of its options, made before anything is spent; and one guard for all cogs.

Discord's client enforces the ranges declared with ``app_commands.Range``, but discord.py does
not re-check them when an interaction arrives (an old or hostile client can send anything),
and the text limit there is a constant while the real one is a setting. So every value is
checked again here; each failure is one sentence naming the option and what is allowed.
"""

from __future__ import annotations

import math
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import discord
from discord import app_commands

from bot.gateway.models import PARAM_RANGES

OUTPUTS = ("file", "voice", "both", "voice_message")



def check_text(text: str, max_chars: int) -> str | None:
    stripped = text.strip()
    if not stripped:
        return "The text is empty; write something to speak."
    if len(stripped) > max_chars:
        return f"The text is too long: {len(stripped)} characters, the limit is {max_chars}."
    return None


def check_params(exaggeration: float, temperature: float, cfg: float) -> str | None:
    for name, value in (("exaggeration", exaggeration), ("temperature", temperature), ("cfg", cfg)):
        low, high = PARAM_RANGES[name]
        if not isinstance(value, int | float) or not math.isfinite(value) or not low <= value <= high:
            return f"`{name}` must be between {low:g} and {high:g} (got {value})."
    return None


def check_output(output: str) -> str | None:
    if output not in OUTPUTS:
        return f"`output` must be one of {', '.join(OUTPUTS)} (got {output!r})."
    return None






def missing_channel_permissions(*, view: bool, send: bool, attach: bool) -> str | None:
    """What the bot lacks in the channel to post the card and the audio, as a sentence."""
    missing = [name for name, ok in (("View Channel", view), ("Send Messages", send),
                                     ("Attach Files", attach)) if not ok]
    if not missing:
        return None
    return (
        f"I can't post audio in this channel: I'm missing the {' and '.join(missing)} "
        f"permission{'s' if len(missing) > 1 else ''} here. Ask a moderator, or use another channel. "
        "Nothing was charged."
    )


def link_expired(url: str, now: datetime) -> bool:
    """Whether a signed Discord CDN link is past its ``ex`` time (hex Unix seconds); links
    without one never expire here."""
    values = parse_qs(urlsplit(url).query).get("ex")
    if not values:
        return False
    try:
        return int(values[0], 16) <= now.timestamp()
    except ValueError:
        return False


def require_resolved_options(interaction: discord.Interaction) -> bool:
    """Refuse a command whose role, member, channel or file option Discord did not resolve.

    discord.py hands such an option to the command as a bare ``discord.Object`` (the role or
    channel was deleted while the member was typing, or an old client sent a stale id); no
    command body should have to cope with that, so the cogs call this from ``interaction_check``.
    """
    for name, value in interaction.namespace:
        if type(value) is discord.Object:
            raise app_commands.CheckFailure(
                f"I can't find what you picked for `{name}` any more (it may have been deleted); "
                "pick it again."
            )
    return True
