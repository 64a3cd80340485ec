"""Discord's rules for voice messages, as the sandbox enforces them.

From the message resource's "Voice Messages" section of Discord's API documentation: a voice
message is a message with the ``IS_VOICE_MESSAGE`` flag (``1 << 13``); it cannot be edited;
it carries exactly one audio attachment and no other content (no text, embeds, stickers,
polls, components); that attachment has ``duration_secs`` (a float, seconds) and
``waveform`` (base64 of a byte array, one byte per point, at most 256 points). Sending one
needs the Send Voice Messages permission (``1 << 46``); without it Discord answers 50173
"Cannot send voice messages in this channel". The 5015x codes are Discord's JSON error codes
for the other rules.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from tests.sandbox import errors

IS_VOICE_MESSAGE = 1 << 13
MAX_WAVEFORM_POINTS = 256


def is_voice_message(fields: dict[str, Any]) -> bool:
    return bool(int(fields.get("flags") or 0) & IS_VOICE_MESSAGE)


def cannot_send_here() -> errors.DiscordAPIError:
    return errors.DiscordAPIError(403, 50173, "Cannot send voice messages in this channel")


def cannot_edit() -> errors.DiscordAPIError:
    return errors.DiscordAPIError(400, 50162, "Voice messages cannot be edited")


def check(fields: dict[str, Any], upload_names: dict[int, str]) -> None:
    """Raise Discord's error when a voice message breaks a documented rule."""
    if fields.get("content") or fields.get("embeds") or fields.get("sticker_ids") or fields.get("poll") \
            or fields.get("components"):
        raise errors.DiscordAPIError(400, 50159, "Voice messages do not support additional content")
    listed = fields.get("attachments") or []
    if len(upload_names) != 1 or len(listed) != 1:
        raise errors.DiscordAPIError(400, 50160, "Voice messages must have a single audio attachment")
    entry = listed[0]
    name = entry.get("filename") or next(iter(upload_names.values()))
    if not str(name).lower().endswith((".ogg", ".oga", ".opus")):
        raise errors.DiscordAPIError(400, 50160, "Voice messages must have a single audio attachment")
    duration = entry.get("duration_secs")
    waveform = entry.get("waveform")
    if not isinstance(duration, int | float) or isinstance(duration, bool) or duration <= 0:
        raise errors.DiscordAPIError(400, 50161, "Voice messages must have supporting metadata")
    if not isinstance(waveform, str):
        raise errors.DiscordAPIError(400, 50161, "Voice messages must have supporting metadata")
    try:
        points = base64.b64decode(waveform, validate=True)
    except (binascii.Error, ValueError):
        raise errors.DiscordAPIError(400, 50161, "Voice messages must have supporting metadata") from None
    if not 1 <= len(points) <= MAX_WAVEFORM_POINTS:
        raise errors.DiscordAPIError(400, 50161, "Voice messages must have supporting metadata")
