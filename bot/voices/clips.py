"""Checking and normalising a reference clip with FFmpeg, so every saved voice is the same shape.

What is stored is always mono 16-bit 24 kHz PCM WAV (Chatterbox's own rate), leading silence
trimmed, at most ``KEEP_SECONDS`` long: only the first ~6-10 s of a reference matter to the
model, and a fixed small shape keeps the clip cheap to keep in the database (≤ ~470 KB).

Decisions:

* FFmpeg runs as an asyncio subprocess through ``bot.audio`` (``probe_audio`` first, which
  decodes the whole upload and so refuses renamed text files and measures its real length;
  then one normalising run). The upload goes through a temporary file because MP4/M4A keep
  their index at the end, which a pipe cannot seek to.
* Leading silence is removed with FFmpeg's ``silenceremove`` (threshold ``SILENCE_DB``); the
  cut to ``KEEP_SECONDS`` is ``-t`` on the output.
* The quality checks are made on the normalised samples in a worker thread (pure Python over
  ≤ 240 000 samples): *sound* is the total length of 20 ms windows louder than ``SILENCE_DB``;
  a clip with less than ``MIN_SOUND_SECONDS`` of it is refused (or called silent when it has
  none); a clip where more than ``MAX_CLIPPED_FRACTION`` of the samples sit at full scale is
  refused as clipped (distorted references clone badly).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import tempfile
import wave
from array import array
from dataclasses import dataclass

from bot.audio import AudioError, _last_line, _run, probe_audio, wav_pcm
from bot.voices.errors import ClipRejected

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
KEEP_SECONDS = 10.0
MIN_SOUND_SECONDS = 5.0
SILENCE_DB = -45.0
WINDOW_SECONDS = 0.02
MAX_CLIPPED_FRACTION = 0.01
FULL_SCALE = 32_700  # |sample| at or above this counts as clipped (16-bit)


@dataclass(frozen=True, slots=True)
class NormalisedClip:
    """The stored form of a voice: WAV bytes, their SHA-256, the length and the sound in it."""

    wav: bytes
    sha256: str
    seconds: float
    sound_seconds: float


def _threshold() -> float:
    return 32768.0 * 10 ** (SILENCE_DB / 20)


def analyse(pcm: bytes) -> tuple[float, float, float]:
    """(seconds of sound, fraction of clipped samples, peak) of mono 16-bit PCM."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if not samples:
        return 0.0, 0.0, 0.0
    window = int(SAMPLE_RATE * WINDOW_SECONDS)
    limit_sq = _threshold() ** 2 * window
    loud_windows = 0
    clipped = 0
    peak = 0
    for start in range(0, len(samples), window):
        chunk = samples[start : start + window]
        energy = 0
        for s in chunk:
            energy += s * s
            a = -s if s < 0 else s
            if a >= FULL_SCALE:
                clipped += 1
            if a > peak:
                peak = a
        if energy >= limit_sq * len(chunk) / window:
            loud_windows += 1
    return loud_windows * WINDOW_SECONDS, clipped / len(samples), float(peak)


def _write_temp(data: bytes) -> str:
    fd, path = tempfile.mkstemp(prefix="chatterbox-voice-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


async def normalise_clip(data: bytes, *, ffmpeg: str | None, max_seconds: float) -> NormalisedClip:
    """Check an uploaded clip and return its stored form; ``ClipRejected`` says why not."""
    if ffmpeg is None:
        raise ClipRejected(
            "no_ffmpeg",
            "Saving voices is not available on this bot right now (its audio tools are missing); "
            "ask the bot's owner.",
        )
    try:
        probe = await probe_audio(data, ffmpeg=ffmpeg)
    except AudioError as exc:
        # The detail may quote FFmpeg (it could not start, or what it said): the log's, not the member's.
        log.info("an uploaded clip was refused: %s", exc)
        raise ClipRejected("not_audio", exc.user_message) from None
    if probe.duration > max_seconds:
        raise ClipRejected(
            "too_long",
            f"The clip is {probe.duration:.0f} s long; the limit is {max_seconds:g} s "
            f"(only the first {KEEP_SECONDS:g} s are kept anyway: trim it and try again).",
        )
    path = await asyncio.to_thread(_write_temp, data)
    try:
        args = [
            ffmpeg,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            path,
            "-map",
            "0:a:0",
            "-vn",
            "-af",
            f"silenceremove=start_periods=1:start_threshold={SILENCE_DB:g}dB",
            "-t",
            f"{KEEP_SECONDS:g}",
            "-ac",
            "1",
            "-ar",
            str(SAMPLE_RATE),
            "-c:a",
            "pcm_s16le",
            "-f",
            "wav",
            "pipe:1",
        ]
        code, out, err = await _run(args, None)
    finally:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(os.unlink, path)
    if code != 0:
        log.warning("FFmpeg could not normalise a voice clip: %s", _last_line(err))
        raise ClipRejected("not_audio", "That clip can't be used: the bot could not read its audio.")
    try:
        info, pcm = wav_pcm(out)
    except AudioError:
        log.warning("FFmpeg's normalised clip was not a readable WAV (%d bytes)", len(out))
        raise ClipRejected(
            "not_audio", "That clip can't be used: the bot could not read its audio."
        ) from None
    sound, clipped, _peak = await asyncio.to_thread(analyse, pcm)
    if sound == 0:
        raise ClipRejected("silent", "That clip is silent: record yourself speaking and try again.")
    if clipped > MAX_CLIPPED_FRACTION:
        raise ClipRejected(
            "clipped",
            "That clip is distorted (too loud, the waveform is clipped): record it a little quieter.",
        )
    if sound < MIN_SOUND_SECONDS:
        raise ClipRejected(
            "too_short",
            f"That clip has only {sound:.1f} s of speech; a voice needs at least {MIN_SOUND_SECONDS:g} s.",
        )
    wav = _wav_bytes(pcm)
    return NormalisedClip(wav, hashlib.sha256(wav).hexdigest(), info.frames / SAMPLE_RATE, sound)


def _wav_bytes(pcm: bytes) -> bytes:
    """A canonical WAV header around the PCM (so the same samples always hash the same)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(pcm)
    return buffer.getvalue()
