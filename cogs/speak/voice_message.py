"""Posting a result as a Discord voice message, through discord.py's HTTP client.

discord.py has no helper for voice messages yet, so the request is built here as Discord
documents it (see ``bot.voice_message`` for the audio side): ``POST /channels/{id}/messages``
as multipart with ``payload_json`` = ``{"flags": IS_VOICE_MESSAGE, "attachments": [{"id":
"0", "filename": "voice-message.ogg", "duration_secs": …, "waveform": …}]}`` and the Ogg Opus
in ``files[0]`` — no content, no components (Discord allows neither on a voice message) — sent
with ``bot.http.request(Route(...), form=...)`` so discord.py's rate limiting and retries apply.

The channel route (not the interaction's webhook) is used: voice messages are a channel
feature that needs the Send Voice Messages permission. When Discord refuses (no permission,
a channel that does not allow them, anything else) or FFmpeg cannot encode,
``VoiceMessageRefused`` says why in one line and the caller posts a file instead.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord.http import Route

from bot.audio import AudioError
from bot.voice_message import FILENAME, IS_VOICE_MESSAGE, VoiceMessageAudio, voice_message_audio

if TYPE_CHECKING:
    from bot.app import ChatterboxBot

log = logging.getLogger(__name__)

#: Discord's codes for "this channel takes no voice messages" / missing permissions.
NOT_ALLOWED_CODES = frozenset({50173, 50013})


class VoiceMessageRefused(Exception):
    """The audio could not go out as a voice message; ``reason`` completes "posted as a file because …"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def voice_message_form(audio: VoiceMessageAudio) -> list[dict[str, Any]]:
    """The multipart form of the request (see the module docstring)."""
    payload = {
        "flags": IS_VOICE_MESSAGE,
        "attachments": [
            {"id": "0", "filename": FILENAME, "duration_secs": round(audio.duration, 3),
             "waveform": audio.waveform},
        ],
        # A raw route: the bot-wide ``AllowedMentions.none()`` only applies to discord.py's
        # senders, so it is spelled out here (a voice message has no content to ping with anyway).
        "allowed_mentions": {"parse": []},
    }
    return [
        {"name": "payload_json", "value": json.dumps(payload)},
        {"name": "files[0]", "value": audio.ogg, "filename": FILENAME, "content_type": "audio/ogg"},
    ]


async def post_voice_message(bot: ChatterboxBot, channel_id: int, wav: bytes) -> int:
    """Post ``wav`` as a voice message in the channel; returns the message id."""
    if bot.ffmpeg is None:
        raise VoiceMessageRefused("voice messages are not available on this bot")
    try:
        audio = await voice_message_audio(wav, ffmpeg=bot.ffmpeg)
    except AudioError as exc:
        log.warning("could not encode a voice message: %s", exc)
        raise VoiceMessageRefused("the audio could not be encoded as a voice message") from None
    route = Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id)
    try:
        data = await bot.http.request(route, form=voice_message_form(audio))
    except discord.HTTPException as exc:
        log.info("Discord refused a voice message in channel %s: %s %s", channel_id, exc.status, exc.code)
        if exc.code in NOT_ALLOWED_CODES:
            raise VoiceMessageRefused("I may not send voice messages in this channel") from None
        raise VoiceMessageRefused("Discord did not accept it as a voice message") from None
    return int(data["id"])
