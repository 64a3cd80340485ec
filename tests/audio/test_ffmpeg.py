"""FFmpeg helpers against the real FFmpeg binary (imageio-ffmpeg's, when no system one)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from bot.audio import (
    NOT_AUDIO_MESSAGE,
    AudioError,
    TooLargeForUpload,
    find_ffmpeg,
    fit_upload,
    probe_audio,
    safe_filename,
    transcode_to_opus,
    wav_info,
)
from tests.audio.wavs import speechlike_wav


async def decoded_seconds(ffmpeg: str, data: bytes) -> float:
    """Decode with FFmpeg directly (independently of probe_audio) and count the samples."""
    proc = await asyncio.create_subprocess_exec(
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", "pipe:0",
        "-ac", "1", "-ar", "24000", "-f", "s16le", "pipe:1",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate(data)
    assert proc.returncode == 0, err.decode()
    return len(out) / 2 / 24_000


def write_script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


# --------------------------------------------------------------------------- find_ffmpeg


def test_find_ffmpeg_prefers_the_configured_path(ffmpeg: str, tmp_path: Path) -> None:
    assert find_ffmpeg(ffmpeg) == ffmpeg
    custom = write_script(tmp_path / "my-ffmpeg", "exit 0\n")
    assert find_ffmpeg(custom) == custom


def test_find_ffmpeg_falls_back_to_path_then_imageio(
    ffmpeg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = write_script(tmp_path / "ffmpeg", "exit 0\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_ffmpeg("/no/such/ffmpeg") == on_path
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    bundled = find_ffmpeg(None)
    assert bundled is not None and "imageio_ffmpeg" in bundled
    assert os.access(bundled, os.X_OK)


def test_find_ffmpeg_none_when_nothing_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "missing-ffmpeg"))
    assert find_ffmpeg(None) is None


# --------------------------------------------------------------------------- transcoding


async def test_transcode_makes_ogg_opus_of_the_same_length(ffmpeg: str) -> None:
    wav = speechlike_wav(3.0)
    ogg = await transcode_to_opus(wav, ffmpeg=ffmpeg, bitrate_kbps=32)
    assert ogg.startswith(b"OggS")
    assert b"OpusHead" in ogg[:200]
    assert len(ogg) < len(wav) / 5
    assert await decoded_seconds(ffmpeg, ogg) == pytest.approx(3.0, abs=0.05)


async def test_transcode_falls_back_to_native_opus_without_libopus(ffmpeg: str, tmp_path: Path) -> None:
    no_libopus = write_script(
        tmp_path / "ffmpeg-no-libopus",
        'for a in "$@"; do\n'
        '  if [ "$a" = libopus ]; then echo "[aost#0:0] Unknown encoder \'libopus\'" >&2; exit 8; fi\n'
        "done\n"
        f'exec "{ffmpeg}" "$@"\n',
    )
    ogg = await transcode_to_opus(speechlike_wav(1.0), ffmpeg=no_libopus, bitrate_kbps=64)
    assert ogg.startswith(b"OggS")
    assert await decoded_seconds(ffmpeg, ogg) == pytest.approx(1.0, abs=0.05)


async def test_transcode_errors_are_audio_errors(ffmpeg: str, tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="not a WAV"):
        await transcode_to_opus(b"hello", ffmpeg=ffmpeg)
    broken = write_script(
        tmp_path / "broken", 'echo "first line" >&2\necho "Conversion failed!" >&2\nexit 1\n'
    )
    with pytest.raises(AudioError, match=r"could not encode the audio: Conversion failed!$"):
        await transcode_to_opus(speechlike_wav(0.1), ffmpeg=broken)
    with pytest.raises(AudioError, match="could not be started"):
        await transcode_to_opus(speechlike_wav(0.1), ffmpeg=str(tmp_path / "absent"))
    with pytest.raises(ValueError):
        await transcode_to_opus(speechlike_wav(0.1), ffmpeg=ffmpeg, bitrate_kbps=1)


async def test_cancelling_a_transcode_kills_ffmpeg(tmp_path: Path) -> None:
    fifo = tmp_path / "pid"
    os.mkfifo(fifo)
    hanging = write_script(tmp_path / "hanging", f'echo $$ > "{fifo}"\nexec sleep 600\n')
    task = asyncio.create_task(transcode_to_opus(speechlike_wav(0.1), ffmpeg=hanging))
    pid = int((await asyncio.to_thread(fifo.read_text)).strip())  # the script is running now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped, not left behind


# --------------------------------------------------------------------------- uploads


async def test_fit_upload_keeps_a_wav_that_fits(ffmpeg: str) -> None:
    wav = speechlike_wav(0.5)
    upload = await fit_upload(wav, limit_bytes=len(wav), ffmpeg=ffmpeg, base_name="Hello, world!")
    assert upload.data is wav
    assert (upload.filename, upload.content_type) == ("hello-world.wav", "audio/wav")
    assert upload.transcoded is False and upload.note == ""


async def test_fit_upload_transcodes_big_audio_under_the_limit(ffmpeg: str) -> None:
    wav = speechlike_wav(10.0)  # 480 KB
    upload = await fit_upload(wav, limit_bytes=200 * 1024, ffmpeg=ffmpeg, base_name="Long story")
    assert upload.transcoded is True
    assert upload.data.startswith(b"OggS") and len(upload.data) <= 200 * 1024
    assert (upload.filename, upload.content_type) == ("long-story.ogg", "audio/ogg")
    assert upload.note == "Compressed to Ogg Opus at 96 kbps to fit the 200 KB upload limit."
    assert await decoded_seconds(ffmpeg, upload.data) == pytest.approx(10.0, abs=0.05)


async def test_fit_upload_steps_down_the_bitrate(ffmpeg: str) -> None:
    wav = speechlike_wav(10.0)
    limit = 30 * 1024  # only 16 kbps (~20 KB for 10 s) fits
    upload = await fit_upload(wav, limit_bytes=limit, ffmpeg=ffmpeg, base_name="x")
    assert len(upload.data) <= limit
    assert "16 kbps" in upload.note


async def test_fit_upload_refuses_impossible_limits(ffmpeg: str) -> None:
    wav = speechlike_wav(10.0)
    with pytest.raises(TooLargeForUpload) as caught:
        await fit_upload(wav, limit_bytes=5 * 1024, ffmpeg=ffmpeg, base_name="x")
    assert str(caught.value) == (
        "The audio is 469 KB, even compressed it does not fit this server's 5 KB upload limit."
    )
    assert (caught.value.size_bytes, caught.value.limit_bytes) == (len(wav), 5 * 1024)


async def test_fit_upload_without_ffmpeg_says_so() -> None:
    wav = speechlike_wav(1.0)
    assert (await fit_upload(wav, limit_bytes=10**6, ffmpeg=None, base_name="a")).data is wav
    with pytest.raises(TooLargeForUpload, match="FFmpeg is not installed"):
        await fit_upload(wav, limit_bytes=1024, ffmpeg=None, base_name="a")


async def test_fit_upload_megabyte_message_rounds_honestly() -> None:
    limit = 25 * 1024 * 1024
    huge = bytes(limit + 50_000)  # just over: must not read "25 MB ... 25 MB"
    with pytest.raises(TooLargeForUpload) as caught:
        await fit_upload(huge, limit_bytes=limit, ffmpeg=None, base_name="a")
    assert str(caught.value).startswith("The audio is 25.1 MB, over this server's 25 MB upload limit")


@pytest.mark.parametrize(
    ("text", "ext", "expected"),
    [
        ("Hello, world!", "wav", "hello-world.wav"),
        ("  Crème brûlée — très bien  ", ".OGG", "creme-brulee-tres-bien.ogg"),
        ("你好世界", "wav", "speech.wav"),
        ("", "wav", "speech.wav"),
        ("../../etc/passwd", "wav", "etc-passwd.wav"),
        ("The quick brown fox jumps over the lazy dog again and again", "wav",
         "the-quick-brown-fox-jumps-over-the-lazy.wav"),
        ("a" * 100, "wav", "a" * 40 + ".wav"),
    ],
)  # fmt: skip
def test_safe_filename(text: str, ext: str, expected: str) -> None:
    assert safe_filename(text, ext) == expected


# --------------------------------------------------------------------------- probing


async def test_probe_wav(ffmpeg: str) -> None:
    result = await probe_audio(speechlike_wav(2.5), ffmpeg=ffmpeg)
    assert result.duration == pytest.approx(2.5, abs=0.01)
    assert (result.format_name, result.codec) == ("wav", "pcm_s16le")


async def test_probe_ogg_opus_from_transcode(ffmpeg: str) -> None:
    ogg = await transcode_to_opus(speechlike_wav(4.0), ffmpeg=ffmpeg)
    result = await probe_audio(ogg, ffmpeg=ffmpeg)
    assert result.duration == pytest.approx(4.0, abs=0.05)
    assert (result.format_name, result.codec) == ("ogg", "opus")


@pytest.mark.parametrize("data", [bytes(range(256)) * 40, b"just some text\n" * 100, b"RIFF\x00\x00WAVEjunk"])
async def test_probe_garbage_is_not_audio(ffmpeg: str, data: bytes) -> None:
    with pytest.raises(AudioError) as caught:
        await probe_audio(data, ffmpeg=ffmpeg)
    assert str(caught.value) == NOT_AUDIO_MESSAGE


async def test_probe_without_ffmpeg_reads_only_wav(ffmpeg: str) -> None:
    wav = speechlike_wav(1.25)
    result = await probe_audio(wav, ffmpeg=None)
    assert result.duration == pytest.approx(wav_info(wav).duration)
    assert result.format_name == "wav"
    ogg = await transcode_to_opus(wav, ffmpeg=ffmpeg)
    with pytest.raises(AudioError, match="FFmpeg is not installed"):
        await probe_audio(ogg, ffmpeg=None)
    with pytest.raises(AudioError, match="empty"):
        await probe_audio(b"", ffmpeg=ffmpeg)


async def test_cancelling_a_probe_leaves_no_temporary_file(
    ffmpeg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    task = asyncio.create_task(probe_audio(speechlike_wav(30.0), ffmpeg=ffmpeg))
    await asyncio.sleep(0)  # the clip is being written in a thread now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.get_running_loop().shutdown_default_executor()  # every thread has finished
    assert os.listdir(tmp_path) == []  # the member's clip is not left behind
