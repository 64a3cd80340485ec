"""``JobRun``: one persisted job driven from its parts to audio, settled exactly once.

A run knows each part's state (from the database when resuming) and does what is left:
POST the pending parts, wait for the submitted ones, download the completed ones, then join
the WAVs, settle the quota and move the job to its final state.

Design decisions:

- POSTs go out one at a time, in chunk order (the "submitter" task); waiting and downloading
  run concurrently, at most ``Settings.chunk_concurrency`` chunks in flight (by default all of
  a request's chunks, bounded by ``CHATTERBOX_MAX_CHUNKS``). A POST takes
  milliseconds while a chunk takes seconds, so the chunks are still made in parallel, and a
  sequential submitter gives a fixed order, lets the wallet's probe permit (a job allowed
  through a 402 pause) be tested by the first chunk alone, and leaves exactly one place where
  a POST can be in progress.
- A saved voice's ``audio_url`` is made right before each POST, not when the job was asked
  for (``bot.speech.voice_ref``): the job stores ``voice:<id>``, and the submit step asks
  ``Pipeline.voice_urls`` for a fresh URL after the rate guard and before the part becomes
  ``submitting``, so a job that waited (or was resumed after a restart) never sends an
  expired link. A voice deleted or revoked meanwhile stops the job there: nothing was sent
  for that part, so it and the later ones are refunded.
- Before each POST the shared ``RateGuard`` is awaited here (not inside the client) so the
  member sees their place in line (``WaitingForSlot``) and so a cancel can tell "still
  waiting, nothing sent" from "posting, maybe charged". The slot is handed to the client
  with ``submit(..., slot_held=True)``.
- Crash safety: right before a POST the part moves ``pending → submitting`` in a committed
  transaction. A later run that finds a ``submitting`` part cannot know whether the POST
  reached the gateway, so it commits that part's quota (DESIGN rule 2: it may have been
  charged) and tells the member so; a ``pending`` part was provably never sent. After a 202
  the part becomes ``submitted`` with its ``request_id`` AND the job leaves ``reserved`` in
  the same transaction (``JobsRepository.advance``), so a later run polls it again.
- Every write is a compare-and-set whose result is checked. One that finds nothing means
  the job is no longer this run's (another process took it over, see ``bot.speech.service``):
  the run stops at once without settling or delivering (``SpeechInterrupted``); the owner
  finishes the job.
- A write that raises ``DatabaseUnavailable`` (away past ``DATABASE_RETRY_SECONDS``) never
  fails the job, whichever write it was: the run stops as it is, the card says the bot is
  catching up, and the reconciler continues from what the database holds. A failed
  ``submitting`` write means nothing was POSTed: the part is still ``pending`` there (POSTed
  by the reconciler) or, if only the COMMIT's answer was lost, ``submitting`` (committed as
  maybe charged, never re-sent).
- Settlement (DESIGN rule 3) is derived from the parts' states, as running totals, once at
  the end (``QuotaService.settle`` is idempotent, so a resume may settle again):
  committed = submitting + submitted + completed + failed parts, refunded =
  error + cancelled parts. A refused POST (``error.refund``: 400/401/402/403/429, connection
  refused) makes its part ``error``; a POST that may have reached the gateway (reset after
  sending, timeout, 5xx) makes it ``failed`` and is never retried.
- Stopping (a failed chunk, or a cancel): a submitter still waiting for its turn is cancelled
  (its parts are refunded); a POST in progress is allowed to finish so its answer is recorded;
  waits and downloads are cancelled (those parts were charged: committed). Database writes are
  never cancelled by a stop, only by ``close`` (which leaves the job to ``resume``).
- The wallet's probe permit (a job let through a 402 pause) is settled by the first POST:
  accepted resumes everyone, 402 restarts the interval; a run that ends without either hands
  the permit back (``WalletGuard.release_probe``).
- Events go through an ``EventSink`` (in order, never blocking the pipeline). ``ChunkReady``
  is emitted strictly in chunk order: a chunk that finishes early waits in memory.
- Parts from the audio cache (a partial hit, ``bot.speech.cached``): such a part is written
  ``cached`` with the job and never changes state; it is never POSTed and counts neither as
  committed nor as refunded (the reservation covers only the parts to make). A live run is
  handed its audio at planning, so a cached chunk 0 is ready at once; a resumed run reads it
  again from the cache (``AudioCache.read``, before any POST of its own). Where that entry
  is gone (evicted past its pin, its file deleted, its voice deleted) the job FAILS with
  ``CACHED_PART_GONE``: making the part instead would need more quota than was reserved
  (a top-up that could be refused half way), so the parts still unsent are refunded, those
  already made stay committed (they were charged) and the member is told which it was.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NoReturn

from bot.audio import AudioError, join_wavs, wav_info
from bot.cache import AudioCache, key_of_ref
from bot.clock import Clock
from bot.config import Settings
from bot.errors import UserFacingError
from bot.gateway.client import ChatterboxClient
from bot.gateway.errors import GatewayError, InsufficientBalance, JobErrored, JobFailed
from bot.gateway.models import StatusDocument, TTSParams, TTSRequest
from bot.gateway.ratelimit import RateGuard
from bot.quotas.service import QuotaService
from bot.quotas.wallet import SubmitPermit, WalletGuard
from bot.speech.errors import SpeechCancelled, SpeechError, SpeechFailed, SpeechInterrupted
from bot.speech.events import (
    Cancelled,
    CatchingUp,
    ChunkReady,
    Completed,
    Failed,
    Processing,
    SpeechResult,
    Submitted,
    WaitingForSlot,
)
from bot.speech.holds import SharedRateGuard
from bot.speech.progress import EventSink
from bot.speech.voice_ref import VoiceUnusable, VoiceUrlResolver, is_reference, referenced_voice
from bot.store.database import DatabaseUnavailable
from bot.store.jobs import AuditNote, JobRecord, JobsRepository, JobState, PartChange, PartState

log = logging.getLogger(__name__)

MAX_JOBS_WITH_AUDIO = 32

#: Why a part left ``submitting`` by an interruption is committed.
MAYBE_CHARGED = "interrupted while submitting; it may have been charged"
#: Its ``audit_log`` action (``/quota history``).
MAYBE_CHARGED_ACTION = "job.maybe_charged"
#: What the member is told about such a job.
MAYBE_CHARGED_USER_MESSAGE = (
    "The bot was interrupted while sending this request: it may have been charged; "
    "the audio could not be recovered."
)
NOT_SENT = "not submitted"
#: The card's line while a job waits for the database or the reconciler.
CATCHING_UP = "The bot is catching up; your audio will be posted here as soon as it is ready."
#: A gateway ERROR on one chunk after others were charged: the quota WAS partly used.
PARTLY_CHARGED_ERROR = (
    "The TTS service had a system error on part of this text; the parts it made were charged. "
    "Please try again."
)
ERROR_TEXT_MAX = 500
#: A resumed job whose cached part left the audio cache meanwhile (see the module docstring).
CACHED_PART_GONE = (
    "Part of this text was saved audio, and it was removed from the cache before the bot could "
    "finish the job after a restart."
)

_CHARGED = frozenset({PartState.SUBMITTING, PartState.SUBMITTED, PartState.COMPLETED, PartState.FAILED})
_NOT_CHARGED = frozenset({PartState.ERROR, PartState.CANCELLED})
_OPEN = (JobState.RESERVED, JobState.SUBMITTED)


@dataclass(frozen=True)
class Pipeline:
    """What every run needs; one per ``SpeechService``."""

    client: ChatterboxClient
    jobs: JobsRepository
    quotas: QuotaService
    wallet: WalletGuard
    limiter: RateGuard
    settings: Settings
    clock: Clock
    #: This process's id in ``jobs.owner``: every write names it (``bot.store.jobs``).
    owner: str | None = None
    #: Where a resumed job's ``cached`` parts are read again (None: such a job fails).
    cache: AudioCache | None = None
    #: Makes a saved voice's ``audio_url`` right before each POST (``bot.speech.voice_ref``).
    voice_urls: VoiceUrlResolver | None = None
    # Jobs of this process holding downloaded audio at once (from a job's first download to
    # its end): when many jobs finish together the rest wait before downloading, so memory
    # stays bounded instead of growing with the number of jobs in flight.
    audio_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_JOBS_WITH_AUDIO))


class _Phase(enum.Enum):
    IDLE = "idle"
    QUEUED = "queued"  # waiting for a chunk slot or the rate guard: nothing sent, cancellable
    POSTING = "posting"  # a POST may be on the wire: never cancelled by a stop
    RECORDING = "recording"  # writing an outcome to the database: never cancelled by a stop
    WAITING = "waiting"  # polling or downloading an accepted job: cancellable (it is charged)


@dataclass(eq=False)
class PartRun:
    """A part's state during a run (mirrors its ``job_parts`` row)."""

    index: int
    text: str
    state: PartState = PartState.PENDING
    request_id: str | None = None
    media_url: str | None = None
    audio: bytes | None = None
    phase: _Phase = _Phase.IDLE
    model_id: str | None = None  # from the completed status (the audio cache's key)

    @property
    def charged(self) -> bool:
        return self.state in _CHARGED

    @property
    def unsent(self) -> bool:
        return self.state is PartState.PENDING

    @property
    def cached(self) -> bool:
        return self.state is PartState.CACHED


def parts_from_record(record: JobRecord) -> list[PartRun]:
    return [
        PartRun(
            index=p.index,
            text=p.text,
            state=p.status,
            request_id=p.request_id,
            media_url=p.media_url,
        )
        for p in record.parts
    ]


def settlement_totals(parts: Sequence[PartRun]) -> tuple[int, int]:
    """(committed, refunded) so far; unsent pending parts are not settled yet, cached parts
    never are (they were not reserved)."""
    committed = sum(1 for p in parts if p.charged)
    refunded = sum(1 for p in parts if p.state in _NOT_CHARGED)
    return committed, refunded


def user_message(exc: BaseException) -> str:
    if isinstance(exc, UserFacingError):
        return exc.user_message
    return SpeechError.default_user_message


class JobRun:
    """Drives one job; ``run()`` returns its ``SpeechResult`` or raises why it did not finish."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        job_id: str,
        reservation_id: str | None,
        key: str,
        text: str,
        voice_url: str | None,
        params: TTSParams,
        parts: Sequence[PartRun],
        sink: EventSink,
        permit: SubmitPermit | None = None,
        submit: bool = True,
        job_state: JobState = JobState.RESERVED,
        guild_id: int | None = None,
        user_id: int | None = None,
        voice_name: str | None = None,
    ) -> None:
        if not parts:
            raise ValueError("a job has at least one part")
        self._p = pipeline
        self.job_id = job_id
        self._reservation_id = reservation_id
        self._key = key
        self._text = text
        self._voice_url = voice_url  # a URL, or a saved voice's ``voice:<id>`` (resolved per POST)
        self._voice_name = voice_name
        self._params = params
        self._parts = list(parts)
        self._sink = sink
        self._permit = permit
        self._may_submit = submit
        self._job_state = job_state  # the job's state when this run began
        self._guild_id = guild_id
        self._user_id = user_id
        self._slots = asyncio.Semaphore(pipeline.settings.chunk_concurrency)
        self._audio_permit: asyncio.Task[None] | None = None
        self._submitter: asyncio.Task[None] | None = None
        self._submitter_phase = _Phase.IDLE
        self._followers: dict[asyncio.Task[None], PartRun] = {}
        self._submitted = sum(1 for p in self._parts if p.state is not PartState.PENDING)
        self._next_ready = 0
        self._started = pipeline.clock.monotonic()
        # None, "failed", "cancelled", "lost" (not ours any more) or "suspended" (the service
        # stops, or the database is away: the job stays open for the reconciler).
        self._stop: str | None = None
        self._suspend_message = CATCHING_UP
        self._failure: BaseException | None = None
        self._finalizing = False
        self._cache_gone = False  # a cached part's entry left the cache (module doc)

    @property
    def chunks(self) -> int:
        return len(self._parts)

    # --- control ------------------------------------------------------------------------

    @property
    def called_from_listener(self) -> bool:
        return self._sink.in_listener()

    def request_cancel(self) -> bool:
        """Stop the job as a cancel; False when it already stopped or is finishing."""
        if self._stop is not None or self._finalizing:
            return False
        self._stop = "cancelled"
        self._interrupt()
        return True

    def fail(self, exc: BaseException) -> None:
        """Stop the job as failed with ``exc`` (before ``run``: it only settles and closes)."""
        self._fail(exc)

    def _check_resumable(self) -> None:
        """A job read back from the database can finish only if every part can still give audio."""
        for part in self._parts:
            if part.state in _NOT_CHARGED or part.state is PartState.FAILED:
                self._fail(SpeechFailed(f"part {part.index} ended {part.state.value}"))
            elif part.state is PartState.SUBMITTING:
                self._fail(SpeechFailed(f"part {part.index} was interrupted while being submitted",
                                        user_message=MAYBE_CHARGED_USER_MESSAGE))
            elif part.unsent and not self._may_submit:
                self._fail(SpeechFailed("interrupted before every part was submitted"))

    def _fail(self, exc: BaseException) -> None:
        if self._stop is not None or self._finalizing:
            return
        self._stop = "failed"
        self._failure = exc
        self._interrupt()

    def suspend(self, message: str) -> bool:
        """Stop working on the job and leave it open (see "Stopping"); False if too late."""
        if self._stop is not None or self._finalizing:
            return False
        self._stop, self._suspend_message = "suspended", message
        self._interrupt()
        return True

    def _lose(self, what: str) -> None:
        """A compare-and-set found nothing: the job is not this run's any more (module doc)."""
        log.warning("job %s: %s: the job changed under this run; leaving it to its owner", self.job_id, what)
        if self._stop != "lost":
            self._stop = "lost"
            self._interrupt()

    def _interrupt(self) -> None:
        """Cancel whatever is safe to cancel (see the module doc, "Stopping")."""
        current = asyncio.current_task()
        if self._submitter is not None and self._submitter_phase is _Phase.QUEUED:
            self._submitter.cancel()
        for task, part in self._followers.items():
            if task is not current and part.phase is _Phase.WAITING:
                task.cancel()

    async def _abort_all(self) -> None:
        """The service is closing: cancel everything, leave the database as it is."""
        tasks = [self._submitter, *self._followers] if self._submitter else list(self._followers)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._sink.abort()

    # --- the run ---------------------------------------------------------------------------

    async def _hold_audio_slot(self) -> None:
        """Wait for this job's one ``Pipeline.audio_slots`` permit (taken at its first download,
        given back when the run ends)."""
        permit = self._audio_permit
        if permit is None:
            permit = self._audio_permit = asyncio.create_task(self._acquire_audio_slot())
        await asyncio.shield(permit)

    async def _acquire_audio_slot(self) -> None:
        await self._p.audio_slots.acquire()

    def _release_audio_slot(self) -> None:
        permit, self._audio_permit = self._audio_permit, None
        if permit is None:
            return
        if permit.done() and not permit.cancelled():
            self._p.audio_slots.release()
        else:
            permit.cancel()

    async def run(self) -> SpeechResult:
        try:
            return await self._run()
        except DatabaseUnavailable as exc:
            # The database is away for longer than DATABASE_RETRY_SECONDS: nothing more can be
            # recorded, so the job stays as the database has it, for the reconciler.
            log.warning("job %s: the database is unavailable (%s); left for the reconciler", self.job_id, exc)
            await self._stop_followers()
            self._sink.post(CatchingUp(self.job_id, CATCHING_UP))
            await self._sink.close()
            raise SpeechInterrupted("the database is unavailable") from None

        finally:
            self._release_audio_slot()

    async def _stop_followers(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in (self._submitter, *self._followers) if t is not None and t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> SpeechResult:
        try:
            self._check_resumable()
            if self._stop is None:
                await self._read_cached()
            if self._stop is None:
                self._release_ready()  # a cached chunk 0 is ready at once
                for part in self._parts:
                    if part.state in (PartState.SUBMITTED, PartState.COMPLETED):
                        self._follow(part, holds_slot=False)
                if any(p.unsent for p in self._parts):
                    self._submitter = asyncio.create_task(
                        self._submit_all(), name=f"speech-submit-{self.job_id}"
                    )
            while True:
                pending = {t for t in (self._submitter, *self._followers) if t is not None and not t.done()}
                if not pending:
                    break
                done, _ = await asyncio.wait(pending)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        error = task.exception()
                        if isinstance(error, DatabaseUnavailable):
                            raise error
                        log.error("job %s: %s crashed", self.job_id, task.get_name(), exc_info=error)
                        self._fail(SpeechFailed(f"{task.get_name()}: {type(error).__name__}"))
            return await self._finish()
        except asyncio.CancelledError:
            await self._abort_all()
            raise

    async def _read_cached(self) -> None:
        """Read again the cached parts a resumed run was not handed (see the module doc);
        before anything is POSTed, so a job whose entry is gone sends nothing more."""
        missing = [p for p in self._parts if p.cached and p.audio is None]
        if not missing:
            return
        cache = self._p.cache
        await self._hold_audio_slot()
        for part in missing:
            key = key_of_ref(part.media_url)
            part.audio = None if cache is None or key is None else await cache.read(key)
            if part.audio is None:
                log.warning("job %s: cached part %d is no longer in the audio cache", self.job_id, part.index)
                self._cache_gone = True
                self._fail(SpeechFailed(f"cached part {part.index} is gone", user_message=CACHED_PART_GONE))
                return

    # --- submitting ------------------------------------------------------------------------

    async def _submit_all(self) -> None:
        for part in self._parts:
            if not part.unsent:
                continue
            if self._stop is not None:
                return
            self._submitter_phase = _Phase.QUEUED
            await self._slots.acquire()
            try:
                if isinstance(self._p.limiter, SharedRateGuard):
                    await self._p.limiter.adopt()  # another process's 429 holds us too
                await self._p.limiter.acquire(self._key, on_position=self._on_position)
            except BaseException:
                self._slots.release()
                raise
            if self._stop is not None:
                self._slots.release()
                return
            self._submitter_phase = _Phase.POSTING
            accepted = await self._post(part)
            self._submitter_phase = _Phase.IDLE
            if not accepted or self._stop is not None:
                self._slots.release()
                return
            self._follow(part, holds_slot=True)

    def _on_position(self, place: int) -> None:
        self._sink.post(WaitingForSlot(self.job_id, place))

    async def _audio_url(self) -> str | None:
        """The ``audio_url`` to send now: a saved voice's is made fresh (module docstring)."""
        if not is_reference(self._voice_url):
            return self._voice_url
        voice_id = referenced_voice(self._voice_url)
        resolver = self._p.voice_urls
        if voice_id is None or resolver is None:
            raise VoiceUnusable(f"unusable voice reference {self._voice_url!r} (resolver: {resolver!r})")
        return await resolver.fresh_audio_url(voice_id, name=self._voice_name)

    async def _post(self, part: PartRun) -> bool:
        """POST one part; record the answer. False (and the job stopped) when it failed."""
        try:
            audio_url = await self._audio_url()
        except VoiceUnusable as exc:  # nothing was sent: the part stays unsent and is refunded
            log.info("job %s: part %d not sent: %s", self.job_id, part.index, exc)
            self._fail(exc)
            return False
        except DatabaseUnavailable:
            raise  # the run is left for the reconciler; the part is still unsent
        except Exception as exc:
            log.exception("job %s: could not make the voice's clip URL for part %d", self.job_id, part.index)
            self._fail(VoiceUnusable(f"resolving the voice: {type(exc).__name__}", user_message=(
                "The saved voice's clip could not be prepared for the TTS service; please try again.")))
            return False
        try:
            moved = await self._record(part, PartState.SUBMITTING, expect=PartState.PENDING)
        except DatabaseUnavailable:
            # Nothing was POSTed. The database has the part ``pending`` (the write did not
            # happen: a later run POSTs it) or, if the COMMIT's answer was what got lost,
            # ``submitting`` (a later run commits it as maybe charged and never re-sends):
            # either way the job is left open for the reconciler (``run``), never failed.
            raise
        except Exception as exc:  # nothing was sent: the part stays unsent and is refunded
            log.exception("job %s: could not record part %d before its POST", self.job_id, part.index)
            self._fail(SpeechFailed(f"could not record part {part.index}: {type(exc).__name__}"))
            return False
        if not moved:
            return False
        if self._stop is not None:  # stopped during that write: nothing was sent after all
            await self._record(part, PartState.PENDING, expect=PartState.SUBMITTING)
            return False
        request = TTSRequest(text=part.text, audio_url=audio_url, params=self._params)
        try:
            accepted = await self._p.client.submit(request, key=self._key, slot_held=True)
        except GatewayError as exc:
            self._submitter_phase = _Phase.RECORDING
            await self._refused(part, exc)
            return False
        except Exception as exc:  # a bug: the POST may have gone out, so keep the charge
            log.exception("job %s: submitting part %d failed unexpectedly", self.job_id, part.index)
            self._submitter_phase = _Phase.RECORDING
            await self._record(part, PartState.FAILED, expect=PartState.SUBMITTING,
                               error=f"{type(exc).__name__} while submitting")
            self._fail(SpeechFailed(f"submitting part {part.index}: {type(exc).__name__}"))
            return False
        self._submitter_phase = _Phase.RECORDING
        part.request_id = accepted.request_id
        # The part and its job move together: never "job reserved, part submitted".
        if not await self._record(part, PartState.SUBMITTED, expect=PartState.SUBMITTING,
                                  job_to=JobState.SUBMITTED, request_id=accepted.request_id, error=None):
            return False
        self._submitted += 1
        if self._permit is not None and self._permit.probe:
            await self._p.wallet.record_success(self._permit)
            self._permit = None
        log.info("job %s: part %d/%d submitted as %s", self.job_id, part.index + 1, self.chunks,
                 accepted.request_id)
        self._sink.post(Submitted(self.job_id, self._submitted, self.chunks))
        return True

    async def _refused(self, part: PartRun, exc: GatewayError) -> None:
        """A POST that raised: refunded if provably not charged (``exc.refund``), else kept."""
        state = PartState.ERROR if exc.refund else PartState.FAILED
        log.warning("job %s: part %d not accepted (%s; %s)", self.job_id, part.index, exc.message,
                    "refunded" if exc.refund else "may have been charged")
        await self._record(part, state, expect=PartState.SUBMITTING, error=exc.message)
        if isinstance(exc, InsufficientBalance):
            await self._p.wallet.record_insufficient_balance(exc.message)
        self._fail(exc)

    async def _record(
        self,
        part: PartRun,
        state: PartState,
        *,
        expect: PartState,
        job_to: JobState | None = None,
        audit: AuditNote | None = None,
        **fields: str | None,
    ) -> bool:
        """Move ``part`` from ``expect`` to ``state`` while its job is open (one transaction,
        see ``JobsRepository.advance``). False when the compare-and-set lost: the run stops."""
        if "error" in fields and fields["error"] is not None:
            fields["error"] = fields["error"][:ERROR_TEXT_MAX]
        moved = await self._p.jobs.advance(
            self.job_id, job_from=_OPEN, job_to=job_to, owner=self._p.owner, audit=audit,
            part=PartChange.of(part.index, expect, state, **fields),
        )
        if not moved:
            self._lose(f"part {part.index} {expect.value} -> {state.value}")
            return False
        part.state = state
        return True

    # --- waiting and downloading -----------------------------------------------------------

    def _follow(self, part: PartRun, *, holds_slot: bool) -> None:
        task = asyncio.create_task(
            self._follow_part(part, holds_slot), name=f"speech-{self.job_id}-{part.index}"
        )
        self._followers[task] = part

    async def _follow_part(self, part: PartRun, holds_slot: bool) -> None:
        settings = self._p.settings
        try:
            if part.state is PartState.SUBMITTED:
                assert part.request_id is not None
                part.phase = _Phase.WAITING

                async def on_status(doc: StatusDocument) -> None:
                    self._sink.post(Processing(
                        self.job_id, elapsed=self._p.clock.monotonic() - self._started,
                        done_chunks=self._next_ready, chunks=self.chunks, status=doc.status.value,
                    ))

                doc = await self._p.client.wait(
                    part.request_id, text_chars=len(part.text), max_wait=settings.chatterbox_max_wait_seconds,
                    key=self._key, on_status=on_status,
                )
                part.phase = _Phase.RECORDING
                part.media_url = doc.media_urls[0]
                part.model_id = doc.model_id
                if not await self._record(part, PartState.COMPLETED, expect=PartState.SUBMITTED,
                                          media_url=part.media_url, error=None):
                    return
                if self._stop is not None:
                    return
            assert part.media_url is not None
            part.phase = _Phase.WAITING
            await self._hold_audio_slot()
            audio = await self._p.client.download(
                part.media_url, max_bytes=settings.chatterbox_max_download_bytes
            )
            part.phase = _Phase.IDLE
            part.audio = audio
            self._release_ready()
        except asyncio.CancelledError:
            raise
        except (JobFailed, JobErrored) as exc:
            part.phase = _Phase.RECORDING
            state = PartState.FAILED if isinstance(exc, JobFailed) else PartState.ERROR
            if await self._record(part, state, expect=PartState.SUBMITTED, error=exc.message):
                self._fail(exc)
        except GatewayError as exc:  # timeout, unreadable status, download: charged, kept
            log.warning("job %s: part %d: %s", self.job_id, part.index, exc.message)
            self._fail(exc)
        except DatabaseUnavailable:
            raise  # its outcome could not be recorded: the job stays open for the reconciler
        except Exception as exc:
            log.exception("job %s: part %d failed unexpectedly", self.job_id, part.index)
            self._fail(SpeechFailed(f"part {part.index}: {type(exc).__name__}"))
        finally:
            part.phase = _Phase.IDLE
            if holds_slot:
                self._slots.release()

    def _release_ready(self) -> None:
        while self._next_ready < self.chunks and self._parts[self._next_ready].audio is not None:
            part = self._parts[self._next_ready]
            assert part.audio is not None
            self._next_ready += 1
            self._sink.post(ChunkReady(self.job_id, part.index, self.chunks, part.audio, part.model_id))

    # --- the end -----------------------------------------------------------------------------

    async def _finish(self) -> SpeechResult:
        self._finalizing = True
        if self._stop is None and any(p.audio is None for p in self._parts):
            self._stop, self._failure = "failed", SpeechFailed("a part ended without audio")
        if self._stop is None:
            try:
                audio, duration = await asyncio.get_running_loop().run_in_executor(
                    None, _join, [p.audio for p in self._parts], self._p.settings.chatterbox_chunk_pause_ms
                )
            except AudioError as exc:
                self._stop, self._failure = "failed", SpeechFailed(str(exc), user_message=(
                    "The TTS service sent audio the bot could not read."))
            else:
                for part in self._parts:  # joined: keep one copy of the audio, not two
                    part.audio = None
                return await self._complete(audio, duration)
        if self._stop in ("lost", "suspended"):
            await self._give_up()
        if self._job_state is JobState.COMPLETED:
            # Its audio could not be fetched again: it stays completed (and charged) for the
            # next try, until its deadline closes it (``bot.speech.service``). A cached part
            # that left the cache never comes back: that job is closed now.
            failure = self._failure or SpeechFailed()
            if self._cache_gone and not await self._p.jobs.transition(
                self.job_id, JobState.COMPLETED, JobState.DELIVERED, owner=self._p.owner,
                error=CACHED_PART_GONE,
            ):
                self._lose("close")
            await self._sink.close()
            raise failure
        committed = await self._settle_stopped()
        refunded = committed == 0
        if self._permit is not None:
            # A probe permit nothing used (cancelled before its POST, or the POST was refused
            # for another reason than 402): hand it back so the next request may probe at
            # once rather than an interval later. A 402 already restarted the interval.
            await self._p.wallet.release_probe(self._permit)
            self._permit = None
        if self._stop == "cancelled":
            if not await self._p.jobs.transition(self.job_id, _OPEN, JobState.CANCELLED, owner=self._p.owner):
                self._lose("cancel")
                await self._give_up()
            log.info("job %s cancelled (%s)", self.job_id, "refunded" if refunded else "charged parts kept")
            self._sink.post(Cancelled(self.job_id, refunded=refunded))
            await self._sink.close()
            raise SpeechCancelled()
        failure = self._failure or SpeechFailed()
        message = user_message(failure)
        if isinstance(failure, JobErrored) and not refunded:
            message = PARTLY_CHARGED_ERROR  # never "your quota was not used" when some was
        if self._job_state is not JobState.FAILED and not await self._p.jobs.transition(
            self.job_id, _OPEN, JobState.FAILED, owner=self._p.owner, error=message[:ERROR_TEXT_MAX]
        ):
            self._lose("fail")
            await self._give_up()
        log.info("job %s failed: %s", self.job_id, failure)
        self._sink.post(Failed(self.job_id, user_message=message, refunded=refunded))
        await self._sink.close()
        # A failure has no audio to hand over: the Failed event is its delivery.
        if not await self._p.jobs.transition(self.job_id, JobState.FAILED, JobState.DELIVERED,
                                             owner=self._p.owner):
            log.warning("job %s: closed by someone else already", self.job_id)
        raise failure

    async def _settle_stopped(self) -> int:
        """Close unsent parts (refund) and interrupted POSTs (commit); settle; return committed."""
        for part in self._parts:
            if part.unsent:
                await self._record(part, PartState.CANCELLED, expect=PartState.PENDING, error=NOT_SENT)
            elif part.state is PartState.SUBMITTING:
                # Moderators see it in /quota history: a request that may have been charged.
                note = AuditNote(self._guild_id, MAYBE_CHARGED_ACTION,
                                 {"user_id": self._user_id, "job_id": self.job_id, "part": part.index})
                await self._record(part, PartState.FAILED, expect=PartState.SUBMITTING, audit=note,
                                   error=MAYBE_CHARGED)
            if self._stop == "lost":
                await self._give_up()
        committed, refunded = settlement_totals(self._parts)
        await self._settle(committed, refunded)
        return committed

    async def _give_up(self) -> NoReturn:
        """The job is not this run's any more, or the run was suspended: no settlement; the
        card hears that the bot is catching up (the job's owner or the reconciler delivers)."""
        message = self._suspend_message if self._stop == "suspended" else CATCHING_UP
        self._sink.post(CatchingUp(self.job_id, message))
        await self._sink.close()
        raise SpeechInterrupted(f"job {self.job_id} left open: {self._stop}")

    async def _settle(self, committed: int, refunded: int) -> Decimal:
        price = self._p.quotas.price_per_request
        if self._reservation_id is None:
            return price * committed
        reservation = await self._p.quotas.settle(
            self._reservation_id, committed=committed, refunded=refunded
        )
        return reservation.cost

    async def _complete(self, audio: bytes, duration: float) -> SpeechResult:
        from_cache = sum(1 for p in self._parts if p.cached)
        cost = await self._settle(self.chunks - from_cache, 0)
        if self._job_state is not JobState.COMPLETED and not await self._p.jobs.transition(
            self.job_id, JobState.SUBMITTED, JobState.COMPLETED, owner=self._p.owner
        ):
            self._lose("complete")
            await self._give_up()
        result = SpeechResult(
            job_id=self.job_id,
            audio=audio,
            duration=duration,
            size=len(audio),
            cost=cost,
            chunks=self.chunks,
            text=self._text,
            exaggeration=self._params.exaggeration,
            temperature=self._params.temperature,
            cfg=self._params.cfg,
            voice_url=self._voice_url,
            cached_chunks=from_cache,
        )
        log.info("job %s completed: %.1f s of audio, %d chunk(s), %d from the cache", self.job_id, duration,
                 self.chunks, from_cache)
        self._sink.post(Completed(self.job_id, result))
        await self._sink.close()
        return result


def _join(parts: list[bytes | None], pause_ms: int) -> tuple[bytes, float]:
    audio = join_wavs([p for p in parts if p is not None], pause_ms=pause_ms)
    return audio, wav_info(audio).duration
