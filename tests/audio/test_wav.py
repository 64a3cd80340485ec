"""WAV facts and joining (stdlib only, no FFmpeg)."""

from __future__ import annotations

import io
import struct
import wave

import pytest

from bot.audio import AudioError, join_wavs, wav_info
from tests.audio.wavs import speechlike_wav


def test_wav_info_reports_format_and_length() -> None:
    data = speechlike_wav(1.5)
    info = wav_info(data)
    assert (info.sample_rate, info.channels, info.sample_width) == (24_000, 1, 2)
    assert info.frames == 36_000
    assert info.duration == pytest.approx(1.5)
    assert info.size == len(data)
    assert info.describe() == "24000 Hz mono 16-bit"


def test_wav_info_counts_frames_present_not_the_header_claim() -> None:
    data = speechlike_wav(1.0)
    truncated = data[: len(data) - 2_000]  # header still claims 24 000 frames
    assert wav_info(truncated).frames == 24_000 - 1_000


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "not a WAV"),
        (b"OggS" + bytes(100), "not a WAV"),
        (b"RIFF\x00\x00\x00\x00WAVE", "truncated"),
    ],
)
def test_wav_info_rejects_non_wav(data: bytes, fragment: str) -> None:
    with pytest.raises(AudioError, match=fragment):
        wav_info(data)


def test_wav_info_rejects_float_wav_clearly() -> None:
    fmt = struct.pack("<HHIIHH", 3, 1, 24_000, 96_000, 4, 32)  # WAVE_FORMAT_IEEE_FLOAT
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 8) + bytes(8)
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    with pytest.raises(AudioError, match="only plain PCM"):
        wav_info(data)


@pytest.mark.parametrize("pause_ms", [0, 250, 333])
def test_join_length_is_parts_plus_pauses_exactly(pause_ms: int) -> None:
    parts = [speechlike_wav(0.7, seed=1), speechlike_wav(1.3, seed=2), speechlike_wav(0.01, seed=3)]
    joined = join_wavs(parts, pause_ms=pause_ms)
    pause_frames = round(24_000 * pause_ms / 1000)
    expected = sum(wav_info(p).frames for p in parts) + 2 * pause_frames
    info = wav_info(joined)
    assert info.frames == expected
    assert (info.sample_rate, info.channels, info.sample_width) == (24_000, 1, 2)


def test_join_keeps_audio_in_order_with_silence_between() -> None:
    a, b = speechlike_wav(0.1, seed=1), speechlike_wav(0.1, seed=2)
    joined = join_wavs([a, b], pause_ms=10)

    def pcm(data: bytes) -> bytes:
        with wave.open(io.BytesIO(data)) as reader:
            return reader.readframes(reader.getnframes())

    assert pcm(joined) == pcm(a) + bytes(240 * 2) + pcm(b)


def test_join_single_part_and_unsigned_8bit_silence() -> None:
    one = speechlike_wav(0.2)
    assert wav_info(join_wavs([one], pause_ms=500)).frames == wav_info(one).frames
    eight = speechlike_wav(0.01, width=1)
    joined = join_wavs([eight, eight], pause_ms=1)
    with wave.open(io.BytesIO(joined)) as reader:
        raw = reader.readframes(reader.getnframes())
    assert raw[240:264] == b"\x80" * 24  # 8-bit silence is the midpoint, not zero


def test_join_refuses_mismatched_formats_naming_them() -> None:
    parts = [speechlike_wav(0.1), speechlike_wav(0.1, rate=22_050)]
    with pytest.raises(AudioError, match=r"chunk 2 is 22050 Hz mono 16-bit, chunk 1 is 24000 Hz mono 16-bit"):
        join_wavs(parts, pause_ms=100)
    with pytest.raises(AudioError, match="stereo"):
        join_wavs([speechlike_wav(0.1), speechlike_wav(0.1, channels=2)], pause_ms=0)


def test_join_refuses_nothing_and_bad_parts() -> None:
    with pytest.raises(AudioError, match="no audio"):
        join_wavs([], pause_ms=0)
    with pytest.raises(AudioError, match="not a WAV"):
        join_wavs([speechlike_wav(0.1), b"garbage"], pause_ms=0)
    with pytest.raises(ValueError, match="negative"):
        join_wavs([speechlike_wav(0.1)], pause_ms=-1)
