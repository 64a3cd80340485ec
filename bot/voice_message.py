"""The audio side of a Discord voice message: Ogg Opus, its duration and its waveform.

Discord's rules for a voice message (the message resource's "Voice Messages" section): the
message has the ``IS_VOICE_MESSAGE`` flag (``1 << 13``), exactly one audio attachment and no
content; the attachment carries ``duration_secs`` (a float) and ``waveform``: base64 of a byte
array, one byte per data point, a preview of the whole recording sampled at most once per
100 ms and downsampled to no more than 256 points. This module makes those three things
from the pipeline's WAV; posting them is the Discord layer's job (``cogs.speak.voice_message``).

Design decisions: the waveform is the peak absolute amplitude of each window scaled to
0-255 (what Discord's own clients draw), computed with ``array`` slices (C speed, no NumPy
dependency) in a worker thread; the Ogg Opus comes from ``bot.audio.transcode_to_opus`` (FFmpeg
as an asyncio subprocess).
"""

from __future__ import annotations

import array
import asyncio
import base64
import math
import sys
from dataclasses import dataclass

from bot.audio import AudioError, transcode_to_opus, wav_pcm

IS_VOICE_MESSAGE = 1 << 13
MAX_POINTS = 256
POINT_SECONDS = 0.1
VOICE_MESSAGE_KBPS = 32
FILENAME = "voice-message.ogg"


@dataclass(frozen=True)
class VoiceMessageAudio:
    ogg: bytes
    duration: float
    waveform: str  # base64


def waveform_points(wav: bytes) -> tuple[float, bytes]:
    """(duration, amplitudes): one byte (0-255) per point, at most 256 points, each at least
    100 ms of audio. 16-bit PCM (what Chatterbox sends); other widths raise ``AudioError``."""
    info, pcm = wav_pcm(wav)
    if info.sample_width != 2:
        raise AudioError(f"Unsupported WAV sample width for a waveform: {info.sample_width * 8}-bit.")
    samples = array.array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    if info.channels > 1:
        samples = samples[:: info.channels]  # the first channel is enough for a preview
    if not samples:
        return info.duration, b""
    points = max(1, min(MAX_POINTS, math.ceil(info.duration / POINT_SECONDS)))
    step = len(samples) / points
    peaks = []
    for index in range(points):
        window = samples[int(index * step): max(int((index + 1) * step), int(index * step) + 1)]
        peak = max(max(window), -min(window))
        peaks.append(min(255, round(peak * 255 / 32767)))
    return info.duration, bytes(peaks)


async def voice_message_audio(wav: bytes, *, ffmpeg: str) -> VoiceMessageAudio:
    """Encode ``wav`` for a voice message; ``AudioError`` when it cannot be."""
    duration, points = await asyncio.to_thread(waveform_points, wav)
    ogg = await transcode_to_opus(wav, ffmpeg=ffmpeg, bitrate_kbps=VOICE_MESSAGE_KBPS)
    return VoiceMessageAudio(ogg=ogg, duration=duration, waveform=base64.b64encode(points).decode("ascii"))
