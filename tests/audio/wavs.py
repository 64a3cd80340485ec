"""Test WAVs made in memory: 24 kHz mono 16-bit like Chatterbox's output."""

from __future__ import annotations

import array
import io
import math
import random
import wave


def speechlike_wav(
    seconds: float, *, rate: int = 24_000, channels: int = 1, width: int = 2, seed: int = 1
) -> bytes:
    """A sine sweep plus seeded noise, so Opus cannot compress it to almost nothing."""
    rng = random.Random(seed)
    frames = round(seconds * rate)
    samples = array.array("h")
    for n in range(frames):
        t = n / rate
        value = 0.5 * math.sin(2 * math.pi * (220 + 200 * t) * t) + 0.2 * (rng.random() - 0.5)
        samples.extend([int(value * 32767)] * channels)
    if width == 2:
        raw = samples.tobytes()
    elif width == 1:
        raw = bytes((s >> 8) + 128 for s in samples)
    else:
        raise ValueError("only 8- and 16-bit test WAVs")
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(raw)
    return out.getvalue()
