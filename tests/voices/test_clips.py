"""Normalising uploaded clips with the real FFmpeg: the stored shape and every refusal."""

from __future__ import annotations

import hashlib
import io
import math
import struct
import wave
from pathlib import Path

import pytest

from bot.audio import find_ffmpeg, wav_info
from bot.voices import ClipRejected, normalise_clip

FFMPEG = find_ffmpeg(None)
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="needs FFmpeg")


def wav(*pieces: tuple[float, int], rate: int = 44_100, channels: int = 2, width: int = 2) -> bytes:
    """Silence/tone pieces: (seconds, amplitude); amplitude 0 is silence."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        for seconds, amplitude in pieces:
            if amplitude == 0:
                writer.writeframes(
                    (b"\x80" if width == 1 else b"\x00" * width) * channels * int(seconds * rate)
                )
                continue
            frames = bytearray()
            for n in range(int(seconds * rate)):
                value = max(-32768, min(32767, int(amplitude * math.sin(2 * math.pi * 220 * n / rate))))
                if width == 1:
                    sample = struct.pack("<B", (value >> 8) + 128)
                else:
                    sample = struct.pack("<h", value)
                frames += sample * channels
            writer.writeframes(bytes(frames))
    return out.getvalue()


async def test_a_clip_becomes_mono_24k_with_leading_silence_cut_and_10_s_kept() -> None:
    clip = await normalise_clip(wav((2.0, 0), (14.0, 8000)), ffmpeg=FFMPEG, max_seconds=30)
    info = wav_info(clip.wav)
    assert (info.sample_rate, info.channels, info.sample_width) == (24_000, 1, 2)
    assert clip.seconds == pytest.approx(10.0, abs=0.05) and info.duration == pytest.approx(10.0, abs=0.05)
    assert clip.sound_seconds == pytest.approx(10.0, abs=0.1)  # the 2 s of silence went first
    assert clip.sha256 == hashlib.sha256(clip.wav).hexdigest()


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (wav((1.0, 0), (3.0, 8000)), "too_short", "only 3.0 s of speech"),
        (wav((8.0, 0)), "silent", "silent"),
        (wav((8.0, 90000)), "clipped", "distorted"),
        (b"these are my notes, not audio\n" * 200, "not_audio", "not an audio clip"),
        (b"RIFF\x00\x00\x00\x00WAVEjunkjunk", "not_audio", "not an audio clip"),
        # Twenty minutes (8 kHz, 8-bit mono to keep the test file small).
        (wav((1200.0, 0), rate=8000, channels=1, width=1), "too_long", "1200 s long; the limit is 30 s"),
    ],
)
async def test_unusable_clips_are_refused_with_a_reason(data: bytes, code: str, words: str) -> None:
    with pytest.raises(ClipRejected) as caught:
        await normalise_clip(data, ffmpeg=FFMPEG, max_seconds=30)
    assert caught.value.code == code and words in caught.value.user_message
    assert "ffmpeg" not in caught.value.user_message.lower()


async def test_an_ffmpeg_that_cannot_start_is_not_named_to_the_member(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "no-such-ffmpeg")
    with caplog.at_level("INFO", logger="bot.voices.clips"), pytest.raises(ClipRejected) as caught:
        await normalise_clip(wav((6.0, 8000)), ffmpeg=missing, max_seconds=30)
    assert caught.value.code == "not_audio"
    assert caught.value.user_message == "The bot's audio converter could not be started."
    assert "FFmpeg could not be started" in caplog.text  # the detail stays in the log


async def test_without_ffmpeg_nothing_is_saved() -> None:
    with pytest.raises(ClipRejected) as caught:
        await normalise_clip(wav((6.0, 8000)), ffmpeg=None, max_seconds=30)
    assert caught.value.code == "no_ffmpeg"
