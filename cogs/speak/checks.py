"""/speak's own checks of its options, made before anything is spent; and one guard for all cogs.

Discord's client enforces the ranges declared with ``app_commands.Range``, but discord.py does
not re-check them when an interaction arrives (an old or hostile client can send anything),
and the text limit there is a constant while the real one is a setting. So every value is
checked again before anything is spent, each rule in one place: the text by the core's
``SpeechService.plan`` (the cog passes the option's limit), the tuning by the core's
``bot.gateway.check_params`` (``check_params`` here only words it for the member), and what
only Discord has (the output choice, the channel's permissions) here. Each failure is one
sentence naming the option and what is allowed.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import discord
from discord import app_commands
from pydantic import ValidationError

from bot.gateway.errors import InvalidTTSRequest
from bot.gateway.models import TTSParams
from bot.gateway.models import check_params as check_tuning

OUTPUTS = ("file", "voice", "both", "voice_message")


def check_params(exaggeration: float, temperature: float, cfg: float) -> str | None:
    """The core's tuning rule (``bot.gateway.check_params``) as the member's sentence, or None."""
    try:
        check_tuning(TTSParams(exaggeration=exaggeration, temperature=temperature, cfg=cfg))
    except InvalidTTSRequest as exc:
        return exc.user_message
    except ValidationError:  # not a number at all (Discord's own clients never send that)
        return "`exaggeration`, `temperature` and `cfg` must be numbers."
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
