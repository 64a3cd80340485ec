"""Audio for the gateway emulator: the WAV it "synthesizes" and the check of reference clips.

The emulator's output is a clearly NON-SPEECH test signal: a row of sine beeps, one per
slice of the text, whose pitch comes from the character at that point (spaces become
silence). It is a real 24 kHz mono 16-bit PCM WAV, so every consumer (WAV parsing, joining
chunks, FFmpeg, Discord uploads and voice playback) handles it like real output, while nobody
can mistake it for speech from the provider.

Design decisions:
- Deterministic: the same text and length setting give the same bytes, so tests compare them.
- Fast without a per-sample Python loop: every pitch is ``24000 / period`` for an integer
  period, so one precomputed period (``array('h')``) repeated by array multiplication fills a
  beep, and the faded head and tail are precomputed per period too. 40 s render in a few ms;
  the emulator still calls :func:`render_test_signal` through an executor to keep the loop free.
- Length follows the text: ``len(text) * seconds_per_char``, clamped to 0.5-40 s (Chatterbox
  yields at most ~40 s per call).
"""

from __future__ import annotations

import io
import math
import sys
import wave
from array import array

SAMPLE_RATE = 24_000
CHANNELS = 1
SAMPLE_WIDTH = 2  # bytes: 16-bit PCM
MIN_SECONDS = 0.5
MAX_SECONDS = 40.0

_BEEP_SECONDS = 0.12  # nominal length of one beep slot
_GAP_FRACTION = 0.2  # the silent end of each slot, so beeps are distinct
_AMPLITUDE = 0.3 * 32767
_MIN_PERIOD = 30  # 800 Hz
_PERIOD_SPAN = 80  # down to 24000 / 109 ≈ 220 Hz
_FADE_SAMPLES = 240  # 10 ms fade in and out, no clicks

AUDIO_MAGIC = (b"RIFF", b"OggS", b"ID3", b"fLaC")


def signal_seconds(text: str, seconds_per_char: float) -> float:
    """How long the test signal for ``text`` lasts, in seconds."""
    return min(MAX_SECONDS, max(MIN_SECONDS, len(text.strip()) * seconds_per_char))


def _period_for(char: str) -> int:
    return _MIN_PERIOD + (ord(char) * 37) % _PERIOD_SPAN


class _Beeps:
    """Precomputed pieces per period: one plain period, a faded-in head, a faded-out tail."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[array[int], array[int], array[int]]] = {}

    def pieces(self, period: int) -> tuple[array[int], array[int], array[int]]:
        found = self._cache.get(period)
        if found is None:
            one = array("h", (round(_AMPLITUDE * math.sin(2 * math.pi * k / period)) for k in range(period)))
            fade_periods = -(-_FADE_SAMPLES // period)
            span = one * fade_periods
            n = len(span)
            head = array("h", (round(v * i / n) for i, v in enumerate(span)))
            tail = array("h", (round(v * (n - 1 - i) / n) for i, v in enumerate(span)))
            found = (one, head, tail)
            self._cache[period] = found
        return found

    def beep(self, period: int, samples: int) -> array[int]:
        """A faded beep of at most ``samples`` samples (a whole number of periods)."""
        one, head, tail = self.pieces(period)
        whole = samples // period
        fade = len(head) // period
        if whole < 2 * fade:
            return array("h", bytes(2 * samples))
        return head + one * (whole - 2 * fade) + tail


def render_test_signal(text: str, seconds_per_char: float) -> bytes:
    """The WAV file (bytes) of the non-speech test signal for ``text``."""
    total = round(signal_seconds(text, seconds_per_char) * SAMPLE_RATE)
    slots = max(1, round(total / (_BEEP_SECONDS * SAMPLE_RATE)))
    source = text.strip() or " "
    beeps = _Beeps()
    pcm = array("h")
    for slot in range(slots):
        start = slot * total // slots
        length = (slot + 1) * total // slots - start
        char = source[slot * len(source) // slots]
        if char.isspace():
            pcm.extend(array("h", bytes(2 * length)))
            continue
        tone = beeps.beep(_period_for(char), int(length * (1 - _GAP_FRACTION)))
        pcm.extend(tone)
        pcm.extend(array("h", bytes(2 * (length - len(tone)))))
    if sys.byteorder == "big":
        pcm.byteswap()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(CHANNELS)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def looks_like_audio(content_type: str | None, head: bytes) -> bool:
    """True when a fetched reference clip is audio: an ``audio/*`` type or a known magic number."""
    if content_type and content_type.split(";", 1)[0].strip().lower().startswith("audio/"):
        return True
    return head.startswith(AUDIO_MAGIC)
