"""Audio facts and conversions: WAV parsing and joining, FFmpeg transcoding, upload fitting.

Design decisions:

* WAV work (facts, joining chunks) uses only the stdlib ``wave`` module, so the core pipeline
  runs without FFmpeg. Only plain PCM WAV is supported (what ``wave`` reads); anything else is
  an ``AudioError`` that says so.
* FFmpeg is an external program, run only through ``asyncio.create_subprocess_exec`` so the
  event loop never blocks. Which binary to use is decided once by the caller with
  ``find_ffmpeg`` (configured path, then ``ffmpeg`` on PATH, then the binary shipped by the
  ``imageio-ffmpeg`` package) and passed in explicitly; nothing here caches it.
* Uploads: the WAV is posted as is when it fits the server's limit, otherwise it is encoded to
  Ogg Opus (mono; Discord plays it inline) at decreasing bitrates until it fits. Opus is chosen
  because it keeps speech intelligible down to 16 kbps, where 10 minutes take ~1.2 MB.
* Voice reference clips arrive in any format, so ``probe_audio`` decodes the whole clip with
  FFmpeg from a temporary file (MP4/M4A keep their index at the end, which a pipe cannot seek
  to) and reports the decoded duration; FFmpeg's verdict decides what "audio" means.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import os
import re
import shutil
import tempfile
import unicodedata
import wave
from collections.abc import Sequence
from dataclasses import dataclass

from bot.errors import UserFacingError

log = logging.getLogger(__name__)

#: Bitrates tried, best first, when a WAV is too big for an upload.
UPLOAD_BITRATES_KBPS: tuple[int, ...] = (96, 64, 32, 16)

WAV_CONTENT_TYPE = "audio/wav"
OGG_CONTENT_TYPE = "audio/ogg"
NOT_AUDIO_MESSAGE = "That file is not an audio clip the bot can read."

_MIB = 1024 * 1024


class AudioError(UserFacingError):
    """Audio that cannot be read, joined or converted.

    ``str(err)`` is the detail for the log and the CLI. ``user_message`` is what a member may
    read: the message itself, unless the raise site gives plain words instead because the
    detail quotes FFmpeg or a Python exception (members never see those).
    """

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message, user_message=user_message or message)


class TooLargeForUpload(AudioError):
    """The audio cannot be made to fit the upload limit; the message says why."""

    def __init__(
        self, message: str, *, size_bytes: int, limit_bytes: int, user_message: str | None = None
    ) -> None:
        super().__init__(message, user_message=user_message or message)
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


# --------------------------------------------------------------------------- WAV


@dataclass(frozen=True, slots=True)
class WavInfo:
    """Facts about a PCM WAV. ``frames`` counts the samples per channel actually present."""

    sample_rate: int
    channels: int
    sample_width: int
    frames: int
    duration: float
    size: int

    def describe(self) -> str:
        """E.g. ``24000 Hz mono 16-bit``."""
        layout = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels}-channel")
        return f"{self.sample_rate} Hz {layout} {self.sample_width * 8}-bit"


def _read_wav(data: bytes) -> tuple[WavInfo, bytes]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError("This is not a WAV file (no RIFF/WAVE header).")
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            if reader.getcomptype() != "NONE":
                raise AudioError(f"Unsupported WAV compression {reader.getcompname()!r}; only PCM works.")
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            # The header's frame count is not trusted: streamed WAVs carry placeholder sizes
            # and truncated files carry the intended size. Count what is really there.
            frames_data = reader.readframes(reader.getnframes())
    except wave.Error as exc:
        if str(exc).startswith("unknown format"):
            raise AudioError(
                f"Unsupported WAV encoding ({exc}); only plain PCM WAV works.",
                user_message="This WAV file uses an encoding the bot cannot read; only plain PCM WAV works.",
            ) from exc
        raise AudioError(
            f"The WAV file is damaged or truncated ({exc}).",
            user_message="The WAV file is damaged or truncated.",
        ) from exc
    except EOFError as exc:
        raise AudioError("The WAV file is damaged or truncated.") from exc
    if channels < 1 or rate < 1:
        raise AudioError("The WAV header is invalid (no channels or no sample rate).")
    frame_size = channels * width
    frames = len(frames_data) // frame_size
    frames_data = frames_data[: frames * frame_size]
    info = WavInfo(
        sample_rate=rate,
        channels=channels,
        sample_width=width,
        frames=frames,
        duration=frames / rate,
        size=len(data),
    )
    return info, frames_data


def wav_info(data: bytes) -> WavInfo:
    """Read a PCM WAV's format and length; ``AudioError`` for anything else."""
    return _read_wav(data)[0]


def join_wavs(parts: Sequence[bytes], *, pause_ms: int) -> bytes:
    """Concatenate same-format WAVs with ``pause_ms`` of silence between consecutive parts.

    The result holds exactly ``sum(frames) + (len(parts) - 1) * round(rate * pause_ms / 1000)``
    frames. Parts in different formats are refused (no resampling here: Chatterbox chunks
    always share one format, so a mismatch means something upstream is wrong). It is only
    memory copies, fast enough for the loop at Chatterbox sizes (a few MB); run it in a thread
    for much larger inputs.
    """
    if pause_ms < 0:
        raise ValueError("pause_ms must not be negative")
    if not parts:
        raise AudioError("There is no audio to join.")
    decoded = [_read_wav(part) for part in parts]
    reference = decoded[0][0]
    for index, (info, _) in enumerate(decoded[1:], start=2):
        if (info.sample_rate, info.channels, info.sample_width) != (
            reference.sample_rate,
            reference.channels,
            reference.sample_width,
        ):
            raise AudioError(
                f"Cannot join audio chunks of different formats: chunk {index} is "
                f"{info.describe()}, chunk 1 is {reference.describe()}."
            )
    pause_frames = round(reference.sample_rate * pause_ms / 1000)
    # 8-bit WAV samples are unsigned, so their silence is 0x80, not 0x00.
    silent_byte = b"\x80" if reference.sample_width == 1 else b"\x00"
    silence = silent_byte * (pause_frames * reference.channels * reference.sample_width)
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(reference.channels)
        writer.setsampwidth(reference.sample_width)
        writer.setframerate(reference.sample_rate)
        for index, (_, frames) in enumerate(decoded):
            if index:
                writer.writeframesraw(silence)
            writer.writeframesraw(frames)
    return out.getvalue()


# --------------------------------------------------------------------------- FFmpeg


def find_ffmpeg(configured: str | None = None) -> str | None:
    """The FFmpeg executable to use, or None when there is none.

    Order: ``configured`` (the ``FFMPEG_PATH`` setting; a path or a command name) when it is
    executable, then ``ffmpeg`` on PATH, then the binary bundled with ``imageio-ffmpeg``.
    Synchronous (``imageio-ffmpeg`` may run the binary once to check it): call it at start-up
    or through ``asyncio.to_thread`` and keep the result.
    """
    if configured:
        found = shutil.which(os.path.expanduser(configured))
        if found:
            return found
        log.warning("FFMPEG_PATH %r is not an executable file; looking for FFmpeg elsewhere", configured)
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        bundled = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError) as exc:
        log.info("no FFmpeg on PATH and none from imageio-ffmpeg (%s)", exc)
        return None
    # IMAGEIO_FFMPEG_EXE is returned unchecked by imageio-ffmpeg, so check it here.
    return shutil.which(bundled)


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no error output"


async def _run(args: Sequence[str], stdin_data: bytes | None) -> tuple[int, bytes, bytes]:
    """Run FFmpeg to completion; the process is killed if the caller is cancelled."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE if stdin_data is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise AudioError(
            f"FFmpeg could not be started ({exc.strerror or exc}).",
            user_message="The bot's audio converter could not be started.",
        ) from exc
    try:
        stdout, stderr = await proc.communicate(stdin_data)
    except BaseException:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, stdout, stderr


def _opus_args(ffmpeg: str, bitrate_kbps: int, encoder: str) -> list[str]:
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "wav", "-i", "pipe:0"]
    args += ["-vn", "-ac", "1", "-c:a", encoder]
    if encoder == "opus":
        # FFmpeg's native encoder is "experimental" and only takes 48 kHz input.
        args += ["-strict", "-2", "-ar", "48000"]
    args += ["-b:a", f"{bitrate_kbps}k", "-f", "ogg", "pipe:1"]
    return args


def _encoder_missing(stderr: bytes) -> bool:
    text = stderr.decode("utf-8", "replace")
    return "Unknown encoder" in text or "Encoder not found" in text


async def transcode_to_opus(wav: bytes, *, ffmpeg: str, bitrate_kbps: int = 64) -> bytes:
    """Encode a WAV as mono Ogg Opus at ``bitrate_kbps``.

    Uses ``libopus``; an FFmpeg built without it falls back to FFmpeg's native ``opus``
    encoder. Failures raise ``AudioError`` carrying FFmpeg's last error line.
    """
    if not 6 <= bitrate_kbps <= 510:
        raise ValueError("Opus bitrates run from 6 to 510 kbps")
    wav_info(wav)  # a clear message for non-WAV input instead of FFmpeg's
    code, out, err = await _run(_opus_args(ffmpeg, bitrate_kbps, "libopus"), wav)
    if code != 0 and _encoder_missing(err):
        log.info("FFmpeg at %s has no libopus; using its native opus encoder", ffmpeg)
        code, out, err = await _run(_opus_args(ffmpeg, bitrate_kbps, "opus"), wav)
    if code != 0 or not out.startswith(b"OggS"):
        raise AudioError(
            f"FFmpeg could not encode the audio: {_last_line(err)}",
            user_message="The bot could not convert this audio.",
        )
    return out


# --------------------------------------------------------------------------- uploads


@dataclass(frozen=True, slots=True)
class Upload:
    """A file ready to post: the bytes, a safe name, its type, and a note for the user."""

    data: bytes
    filename: str
    content_type: str
    transcoded: bool
    note: str


def safe_filename(text: str, ext: str) -> str:
    """A short ASCII file name derived from ``text``: ``"Hello, world!"`` -> ``hello-world.wav``.

    At most 40 characters before the extension, cut at a word boundary when possible; text
    with nothing ASCII-representable (e.g. only CJK) becomes ``speech``.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > 40:
        cut = slug.rfind("-", 0, 41)
        slug = slug[:cut] if cut >= 20 else slug[:40]
        slug = slug.strip("-")
    suffix = re.sub(r"[^a-z0-9]+", "", ext.lower()) or "bin"
    return f"{slug or 'speech'}.{suffix}"


def _size_text(size: int, *, round_up: bool) -> str:
    """Human size in binary units (Discord's "25 MB" limit is 25 MiB).

    The audio's size rounds up and the limit rounds down, so a file just over the limit
    never reads as the same number as the limit.
    """
    step = math.ceil if round_up else math.floor
    if size < _MIB:
        return f"{max(1, step(size / 1024))} KB" if size else "0 KB"
    value = step(size / _MIB * 10) / 10
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} MB"


async def fit_upload(wav: bytes, *, limit_bytes: int, ffmpeg: str | None, base_name: str) -> Upload:
    """Make ``wav`` fit an upload limit: the WAV itself, else Ogg Opus, else ``TooLargeForUpload``.

    ``base_name`` is the file's stem (or the spoken text; it is passed through
    ``safe_filename``). Bitrates in ``UPLOAD_BITRATES_KBPS`` are tried best first; after a
    miss, bitrates that would clearly still be too big (Opus size is close to proportional to
    bitrate; 25 % margin for variable bitrate) are skipped to save FFmpeg runs.
    """
    if limit_bytes <= 0:
        raise ValueError("limit_bytes must be positive")
    if len(wav) <= limit_bytes:
        return Upload(wav, safe_filename(base_name, "wav"), WAV_CONTENT_TYPE, False, "")
    size_text = _size_text(len(wav), round_up=True)
    limit_text = _size_text(limit_bytes, round_up=False)
    if ffmpeg is None:
        raise TooLargeForUpload(
            f"The audio is {size_text}, over this server's {limit_text} upload limit, and FFmpeg "
            "is not installed to compress it.",
            size_bytes=len(wav),
            limit_bytes=limit_bytes,
            user_message=f"The audio is {size_text}, over this server's {limit_text} upload limit, "
            "and this bot cannot compress audio.",
        )
    ceiling = math.inf
    for bitrate in UPLOAD_BITRATES_KBPS:
        if bitrate > ceiling:
            continue
        encoded = await transcode_to_opus(wav, ffmpeg=ffmpeg, bitrate_kbps=bitrate)
        if len(encoded) <= limit_bytes:
            note = f"Compressed to Ogg Opus at {bitrate} kbps to fit the {limit_text} upload limit."
            return Upload(encoded, safe_filename(base_name, "ogg"), OGG_CONTENT_TYPE, True, note)
        ceiling = bitrate * limit_bytes / len(encoded) * 1.25
    raise TooLargeForUpload(
        f"The audio is {size_text}, even compressed it does not fit this server's {limit_text} upload limit.",
        size_bytes=len(wav),
        limit_bytes=limit_bytes,
    )


# --------------------------------------------------------------------------- probing


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What FFmpeg found in an uploaded clip: decoded length, container and codec names."""

    duration: float
    format_name: str
    codec: str


_INPUT_FORMAT = re.compile(r"Input #0, (.+?), from ")
_AUDIO_CODEC = re.compile(r"Stream #0:\d+.*?: Audio: ([\w.-]+)")
_OUT_TIME = re.compile(rb"out_time_us=(\d+)")


def _write_temp(data: bytes) -> str:
    fd, path = tempfile.mkstemp(prefix="chatterbox-probe-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


async def probe_audio(data: bytes, *, ffmpeg: str | None) -> ProbeResult:
    """Check that ``data`` is audio and measure it by decoding all of it.

    Without FFmpeg only PCM WAV can be checked (via ``wav_info``). Garbage, images and
    files without an audio stream raise ``AudioError(NOT_AUDIO_MESSAGE)``.
    """
    if not data:
        raise AudioError("The file is empty.")
    if ffmpeg is None:
        try:
            info = wav_info(data)
        except AudioError as exc:
            raise AudioError(
                "Only WAV files can be checked because FFmpeg is not installed; "
                f"that file could not be read ({exc})",
                user_message="This bot can only use WAV voice clips, and that file is not one it can read.",
            ) from exc
        return ProbeResult(info.duration, "wav", f"pcm_s{info.sample_width * 8}le")
    writing = asyncio.ensure_future(asyncio.to_thread(_write_temp, data))
    try:
        path = await asyncio.shield(writing)
    except asyncio.CancelledError:
        # The thread goes on and creates the file anyway: wait for it and delete the clip.
        with contextlib.suppress(Exception):
            await asyncio.to_thread(os.unlink, await writing)
        raise
    try:
        args = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-i", path, "-map", "0:a:0", "-vn"]
        args += ["-f", "null", "-progress", "pipe:1", "-"]
        code, out, err = await _run(args, None)
    finally:
        await asyncio.to_thread(os.unlink, path)
    times = _OUT_TIME.findall(out)
    if code != 0 or not times:
        log.debug("ffmpeg rejected an uploaded clip: %s", _last_line(err))
        raise AudioError(NOT_AUDIO_MESSAGE)
    duration = int(times[-1]) / 1_000_000
    if duration <= 0:
        raise AudioError("That audio file contains no sound (0 seconds).")
    header = err.decode("utf-8", "replace").split("Stream mapping:")[0]
    fmt = _INPUT_FORMAT.search(header)
    codec = _AUDIO_CODEC.search(header)
    return ProbeResult(duration, fmt.group(1) if fmt else "unknown", codec.group(1) if codec else "unknown")


# --------------------------------------------------------------------------- voice streaming


def wav_pcm(data: bytes) -> tuple[WavInfo, bytes]:
    """A PCM WAV's facts and its raw sample bytes (header stripped, whole frames only).

    For streaming chunks to FFmpeg as one raw PCM stream (voice playback); raises
    ``AudioError`` for anything ``wav_info`` refuses.
    """
    return _read_wav(data)


#: FFmpeg's raw PCM format name for each WAV sample width (8-bit WAV is unsigned).
PCM_FORMATS: dict[int, str] = {1: "u8", 2: "s16le", 3: "s24le", 4: "s32le"}


def ffmpeg_raw_input_args(info: WavInfo) -> list[str]:
    """FFmpeg input options that read raw PCM in ``info``'s format from a pipe."""
    try:
        fmt = PCM_FORMATS[info.sample_width]
    except KeyError:
        raise AudioError(f"Unsupported WAV sample width: {info.sample_width * 8}-bit.") from None
    return ["-f", fmt, "-ar", str(info.sample_rate), "-ac", str(info.channels)]
