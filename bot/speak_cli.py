"""``chatterbox-bot speak "text" -o out.wav``: the same pipeline as ``/speak``, to a file.

The CLI is one more requester of ``SpeechService`` (user 0, "cli", no guild), marked as the
operator: the member limits (cooldown, characters per request, daily requests) do not bind it,
while the wallet pause, the shared rate guard, chunking of long text, the persisted job and the
usage ledger all apply as in Discord; its jobs have no Discord destination, so the bot never
tries to resume them.

Output contract: progress lines on stderr unless ``--quiet`` ("queued…", "submitted 1/2",
"processing 3.2 s", "chunk 2/3", "done: 4.1 s of audio, 1 request, $0.01 -> out.wav"); any
failure is ONE line on stderr starting with ``chatterbox-bot:`` and exit status 1, or 2 for a
usage or configuration problem (a missing setting, invalid text or option, an unwritable
output). To keep that promise the process's log output is limited to errors, unless
``LOG_LEVEL=DEBUG`` asks for everything. The output is checked before any money is spent and
written atomically (temporary file, then rename). Ctrl-C cancels the job properly: quota for
chunks never sent is refunded, submitted ones are committed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.config import ConfigError, Settings
from bot.errors import UserFacingError
from bot.formats import money, plural
from bot.speech.events import (
    ChunkReady,
    CostPlan,
    DeliveryTarget,
    Processing,
    QuotaReserved,
    Requester,
    SpeechEvent,
    SpeechResult,
    Submitted,
    WaitingForSlot,
)

if TYPE_CHECKING:
    from bot.services import Services

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# The operator: member limits (cooldown, characters per request, …) do not apply to the CLI.
CLI_REQUESTER = Requester(user_id=0, display_name="cli", guild_id=None, operator=True)


class UsageError(Exception):
    """A problem with what was asked for on the command line (exit 2)."""



class Progress:
    """Renders speech events as short lines on ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._shown: tuple[str, float] | None = None  # the last "processing" line: label, elapsed

    def line(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    async def __call__(self, event: SpeechEvent) -> None:
        if isinstance(event, QuotaReserved):
            if event.plan.cached:
                self.line(f"from cache, $0 ({plural(len(event.plan.chunks), 'chunk')})")
            else:
                cached = f" ({len(event.plan.from_cache)} from cache)" if event.plan.from_cache else ""
                requests = plural(event.plan.requests, "request")
                self.line(f"queued… {requests}{cached}, {money(event.plan.cost)}")
        elif isinstance(event, WaitingForSlot):
            self.line(f"waiting for a free slot (place {event.position})…")
        elif isinstance(event, Submitted) and event.chunks > 1:
            self.line(f"submitted {event.submitted_chunks}/{event.chunks}")
        elif isinstance(event, Processing):
            label = "queued at the provider" if event.status == "QUEUED" else "processing"
            # Several chunks report their status changes; one line per label and second is enough.
            if self._shown is None or self._shown[0] != label or event.elapsed >= self._shown[1] + 1:
                self._shown = (label, event.elapsed)
                self.line(f"{label} {event.elapsed:.1f} s")
        elif isinstance(event, ChunkReady) and event.chunks > 1:
            self.line(f"chunk {event.index + 1}/{event.chunks}")

    def done(self, result: SpeechResult, plan: CostPlan, output: Path) -> None:
        self.line(f"done: {result.duration:.1f} s of audio, {plural(plan.requests, 'request')}, "
                  f"{money(result.cost)} -> {output}")


def _fail(message: str, code: int) -> int:
    print(f"chatterbox-bot: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return code


def _quiet_logs(settings: Settings) -> None:
    if settings.log_level != "DEBUG":
        root = logging.getLogger()
        root.setLevel(max(root.level, logging.ERROR))


def _check_output(path: Path) -> None:
    """Refuse, before anything is spent, an output that cannot be written."""
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give a file name such as {path / 'speech.wav'}")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"cannot write {path}: permission denied")


#: An audio file is for playing and sharing: readable by all, like any file a shell writes
#: (``mkstemp`` makes its temporary file 0600, which a media player run by another user, or a
#: web server, could not read).
OUTPUT_MODE = 0o644


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            os.fchmod(out.fileno(), OUTPUT_MODE)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _failure_message(exc: BaseException) -> str:
    from bot.gateway.errors import InsufficientBalance
    from bot.quotas.wallet import SubmissionsPaused

    if isinstance(exc, InsufficientBalance):
        needed = f" (it asked for ${exc.required})" if exc.required else ""
        return (f"insufficient balance: the Chatterbox account is out of credit{needed}; "
                "submissions are paused until it is topped up.")
    if isinstance(exc, SubmissionsPaused):
        since = f" since {exc.since:%Y-%m-%d %H:%M} UTC" if exc.since else ""
        retry = f"; the next try is allowed after {exc.next_probe_at:%H:%M} UTC" if exc.next_probe_at else ""
        return f"submissions are paused{since}: the gateway reported insufficient balance{retry}."
    return exc.user_message if isinstance(exc, UserFacingError) else str(exc)


async def _check_voice_url(services: Services, url: str) -> bytes:
    """The same clip rules as ``/speak clip:`` (``bot.speech.reference``): fetched once with
    the process's session (never with the API key), then checked; ``InvalidTTSRequest``.
    Returns the clip's bytes (the audio cache keys on their hash)."""
    from bot.audio import find_ffmpeg
    from bot.gateway.errors import DownloadError, InvalidTTSRequest
    from bot.speech import reference

    settings = services.settings
    try:
        data = await services.client.download(url, max_bytes=settings.voice_ref_max_bytes)
    except DownloadError as exc:
        problem = f"the voice clip at --voice-url could not be used: {exc.message}"
        raise InvalidTTSRequest("voice", problem) from exc
    ffmpeg = await asyncio.to_thread(find_ffmpeg, settings.ffmpeg_path)
    await reference.check_clip(
        data, content_type="audio/*", filename=url.rsplit("/", 1)[-1] or "clip",
        max_bytes=settings.voice_ref_max_bytes, max_seconds=settings.voice_ref_max_seconds, ffmpeg=ffmpeg,
    )
    return data


async def speak_to_file(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``speak``; returns the exit status (see the module docstring)."""
    _quiet_logs(settings)
    # Imported only now: importing the store (Alembic) logs at INFO level.

    from bot.cache import clip_sha256
    from bot.gateway.errors import GatewayError, InvalidTTSRequest
    from bot.gateway.models import TTSParams
    from bot.quotas.errors import QuotaExceeded
    from bot.quotas.wallet import SubmissionsPaused
    from bot.speech.cleanup import NOTHING_TO_SAY, clean_text
    from bot.speech.errors import SpeechError
    from bot.store.engine import DatabaseUrlError

    progress = None if args.quiet else Progress(sys.stderr)
    try:
        settings.require_api_key()
        output = Path(args.output)
        await asyncio.to_thread(_check_output, output)
        params = TTSParams(exaggeration=args.exaggeration, temperature=args.temperature, cfg=args.cfg)
        spoken = clean_text(args.text)  # the text as it is spoken and billed (bot.speech.cleanup)
        if args.text.strip() and not spoken:
            raise UsageError(NOTHING_TO_SAY)
        async with await _open_services(settings) as services:
            clip = None
            if args.voice_url:
                clip = clip_sha256(await _check_voice_url(services, args.voice_url))
            job = await services.speech.start(
                CLI_REQUESTER, spoken, voice_url=args.voice_url, params=params,
                target=DeliveryTarget(kind="file"), on_event=progress, clip_sha256=clip,
            )
            try:
                result = await job.result()
            except asyncio.CancelledError:
                await asyncio.shield(job.cancel())
                raise
            try:
                await asyncio.to_thread(_write_atomically, output, result.audio)
            except OSError as exc:
                return _fail(f"cannot write {output}: {exc.strerror or exc}", EXIT_FAILED)
            await services.speech.mark_delivered(job.job_id)
        if progress is not None:
            progress.done(result, job.plan, output)
        return EXIT_OK
    except (ConfigError, DatabaseUrlError, UsageError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except InvalidTTSRequest as exc:
        return _fail(exc.user_message, EXIT_USAGE)
    except (GatewayError, QuotaExceeded, SubmissionsPaused, SpeechError) as exc:
        return _fail(_failure_message(exc), EXIT_FAILED)


async def _open_services(settings: Settings) -> Services:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.services import Services

    try:
        # The HTTP server is needed only to receive push callbacks (PUBLIC_BASE_URL).
        return await Services.open(settings, serve_http=settings.push_enabled)
    except (OSError, SQLAlchemyError) as exc:
        # The driver's text may quote the URL; name the setting and the kind of failure only.
        raise UsageError(f"cannot open the database named by DATABASE_URL ({type(exc).__name__})") from None
