"""The voice reference clip's rules, the same for every front end: type, size, duration.

``/speak clip:`` (an attachment) and ``chatterbox-bot speak --voice-url`` both go through
here before anything is reserved, so a clip that is not audio, too large or too long is
refused with one sentence naming the problem, and nothing is spent. Checks that need only
metadata (``metadata_problem``) run before the clip is downloaded; ``check_clip`` then
decodes the bytes (``bot.audio.probe_audio``: FFmpeg as an asyncio subprocess) to measure it.
"""

from __future__ import annotations

import logging
import math
from pathlib import PurePosixPath

from bot.audio import AudioError, ProbeResult, probe_audio
from bot.gateway.errors import InvalidTTSRequest

log = logging.getLogger(__name__)

#: Extensions accepted when the uploader's content type is unknown.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".mp3", ".ogg", ".oga", ".opus", ".flac", ".m4a", ".aac", ".webm", ".weba", ".mka", ".wma"}
)


def is_audio(content_type: str | None, filename: str) -> bool:
    """Audio by its content type, else (type unknown) by a known audio extension."""
    if content_type:
        main = content_type.split(";", 1)[0].strip().lower()
        return main.startswith("audio/")
    return PurePosixPath(filename.lower()).suffix in AUDIO_EXTENSIONS


def _size(size: int, *, round_up: bool) -> str:
    """KB below 1 MB, else MB with one decimal; the file rounds up and the limit down, so a
    file just over the limit never reads as the limit."""
    step = math.ceil if round_up else math.floor
    if size < 1024 * 1024:
        return f"{step(size / 1024)} KB"
    return f"{step(size / (1024 * 1024) * 10) / 10:g} MB"


def metadata_problem(content_type: str | None, filename: str, size: int, max_bytes: int) -> str | None:
    """What is wrong with the clip judging by its type and size, or None."""
    if not is_audio(content_type, filename):
        kind = content_type or "an unknown type"
        return (
            f"The voice clip must be an audio file (WAV, MP3, OGG, FLAC, M4A…); "
            f"`{filename}` is {kind}."
        )
    if size > max_bytes:
        return (
            f"The voice clip is {_size(size, round_up=True)}; "
            f"the limit is {_size(max_bytes, round_up=False)}."
        )
    if size == 0:
        return "The voice clip is empty."
    return None


def duration_problem(duration: float, max_seconds: float) -> str | None:
    if duration > max_seconds:
        return (
            f"The voice clip is {duration:.1f} s long; the limit is {max_seconds:g} s "
            "(the first ~10 s are what matter for the voice)."
        )
    return None


async def check_clip(
    data: bytes,
    *,
    content_type: str | None,
    filename: str,
    max_bytes: int,
    max_seconds: float,
    ffmpeg: str | None,
) -> ProbeResult:
    """Every rule on the clip's bytes; ``InvalidTTSRequest("voice", …)`` naming the first broken."""
    problem = metadata_problem(content_type, filename, len(data), max_bytes)
    if problem is not None:
        raise InvalidTTSRequest("voice", problem)
    try:
        probe = await probe_audio(data, ffmpeg=ffmpeg)
    except AudioError as exc:
        log.info("voice clip %r refused: %s", filename, exc)  # the detail may quote FFmpeg
        raise InvalidTTSRequest("voice", f"The voice clip can't be used: {exc.user_message}") from exc
    problem = duration_problem(probe.duration, max_seconds)
    if problem is not None:
        raise InvalidTTSRequest("voice", problem)
    return probe
