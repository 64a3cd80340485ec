"""``SpeechService``: text in, a persisted job out, audio at the end (DESIGN rules 1-6).

``start`` checks everything that can be checked before money or quota is touched — the text
(length, chunk count), the tuning values and voice URL, the guild's pause, the bot-wide 402
pause — and only then reserves the quota and writes the job in ONE transaction
(``QuotaService.reserve(job=...)``). Any refusal therefore leaves nothing behind: no job, no
reservation (rule 6). The work then runs in a background task (``bot.speech.runner``) and
the caller gets a ``SpeechJob`` handle plus events (``bot.speech.events``).

Delivery: the service never posts anything. For a live job the Discord layer (or the CLI)
takes the audio from ``Completed`` / ``SpeechJob.result()``, delivers it, then calls
``mark_delivered``. A failed job needs no delivery: its ``Failed`` event says why, and it is
marked delivered by the service. After a restart, ``resume_pending(deliver)`` takes over what
the previous process left (see its docstring).

Concurrency inside one process: every job this service is handling — started here, resumed
here, or completed and waiting for ``mark_delivered`` — is "claimed" in memory, and
``resume_pending`` skips claimed jobs; the state changes themselves are compare-and-set
(``JobsRepository.transition``), so a second ``resume_pending`` call never handles a job
twice. Resuming assumes one bot process per database does it (one Discord connection per
token); jobs without a Discord destination (the CLI's) are never resumed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from bot.cache import BUILTIN_VOICE
from bot.clock import Clock
from bot.config import Settings
from bot.gateway.client import ChatterboxClient
from bot.gateway.errors import InvalidTTSRequest
from bot.gateway.models import TTSParams, TTSRequest
from bot.gateway.ratelimit import RateGuard
from bot.quotas.service import QuotaService
from bot.quotas.wallet import WalletGuard
from bot.speech.cached import CacheSeam, Replay
from bot.speech.chunking import split_text
from bot.speech.errors import SpeechFailed, SpeechInterrupted
from bot.speech.events import (
    CostPlan,
    DeliveryTarget,
    QuotaReserved,
    Requester,
    ResumedJob,
    SpeechEvent,
    SpeechResult,
)
from bot.speech.progress import EventSink
from bot.speech.runner import JobRun, PartRun, Pipeline, parts_from_record
from bot.store.database import Database
from bot.store.jobs import JobRecord, JobsRepository, JobState, NewJob

log = logging.getLogger(__name__)

EventCallback = Callable[[SpeechEvent], Awaitable[None]]
DeliverCallback = Callable[[ResumedJob, SpeechResult], Awaitable[None]]
#: ``on_failed(job, user_message)``: a resumed job ended without audio (close its card).
FailedCallback = Callable[[ResumedJob, str], Awaitable[None]]


def has_destination(delivery: Mapping[str, Any]) -> bool:
    """Whether a persisted ``DeliveryTarget`` names somewhere in Discord to deliver to."""
    return any(delivery.get(name) for name in ("channel_id", "voice_channel_id", "interaction_token"))


def delivery_target(record: JobRecord) -> DeliveryTarget:
    """The job's ``DeliveryTarget`` back from its persisted form (unknown keys ignored)."""
    names = {f.name for f in dataclasses.fields(DeliveryTarget)}
    return DeliveryTarget(**{k: v for k, v in record.delivery.items() if k in names})


def resumed_job(record: JobRecord, *, refunded: bool = False) -> ResumedJob:
    """What the Discord layer gets of a stored job it must deliver or close."""
    target = delivery_target(record)
    return ResumedJob(
        job_id=record.id,
        user_id=record.user_id,
        text=record.text,
        voice_url=record.voice_url,
        params=TTSParams.model_validate(record.params or {}),
        target=target,
        channel_id=target.channel_id or record.channel_id,
        refunded=refunded,
    )


class SpeechJob:
    """A handle on one running job."""

    def __init__(self, job_id: str, plan: CostPlan, requester: Requester, run: JobRun | Replay,
                 task: asyncio.Task[SpeechResult]) -> None:
        self.job_id = job_id
        self.plan = plan
        self.requester = requester
        self._run = run
        self._task = task

    def __repr__(self) -> str:
        return f"SpeechJob({self.job_id!r}, chunks={self.plan.requests}, done={self.done()})"

    def done(self) -> bool:
        return self._task.done()

    async def result(self) -> SpeechResult:
        """The audio, or the error that ended the job (a ``GatewayError`` subclass,
        ``SpeechCancelled``, ``SpeechFailed``; ``SpeechInterrupted`` if the service closed)."""
        await asyncio.wait({self._task})
        if self._task.cancelled():
            raise SpeechInterrupted()
        return self._task.result()

    async def cancel(self) -> bool:
        """Cancel; True if this call cancelled it. Returns once the job is settled: before any
        chunk was submitted everything is refunded; after, waiting stops, submitted chunks are
        committed (they were charged) and unsubmitted ones refunded. Called from inside the
        job's own ``on_event`` listener it returns at once (the job's end waits for that
        listener); likewise never await ``result()`` inside the listener."""
        if self._task.done() or not self._run.request_cancel():
            return False
        if not self._run.called_from_listener:  # the job waits for its listener at the end
            await asyncio.wait({self._task})
        return True


class SpeechService:
    """The speech pipeline (see the module docstring)."""

    def __init__(
        self,
        *,
        client: ChatterboxClient,
        db: Database,
        quotas: QuotaService,
        wallet: WalletGuard,
        limiter: RateGuard,
        settings: Settings,
        clock: Clock,
        cache: CacheSeam | None = None,
    ) -> None:
        self._client = client
        self._cache = cache
        self._quotas = quotas
        self._wallet = wallet
        self._settings = settings
        self._jobs = JobsRepository(db, clock)
        self._pipeline = Pipeline(client=client, jobs=self._jobs, quotas=quotas, wallet=wallet,
                                  limiter=limiter, settings=settings, clock=clock)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._claimed: set[str] = set()
        self._closed = False

    # --- planning --------------------------------------------------------------------------

    def plan(self, text: str) -> CostPlan:
        """Split ``text`` into chunks and price it; ``InvalidTTSRequest`` when it cannot be spoken."""
        text = text.strip()
        settings = self._settings
        if not text:
            raise InvalidTTSRequest("text", "The text is empty; write something to speak.")
        limit = settings.chatterbox_max_text_chars
        if len(text) > limit:
            raise InvalidTTSRequest(
                "text", f"The text is {len(text):,} characters; the limit is {limit:,}. Please shorten it."
            )
        chunks = tuple(split_text(text, settings.chatterbox_chunk_chars))
        if not chunks:
            raise InvalidTTSRequest("text", "The text is empty; write something to speak.")
        most = settings.chatterbox_max_chunks
        if len(chunks) > most:
            about = min(limit, most * settings.chatterbox_chunk_chars * 9 // 10)
            raise InvalidTTSRequest(
                "text",
                f"This text is too long: it needs {len(chunks)} requests and at most {most} are allowed "
                f"per message. Keep it under about {about:,} characters.",
            )
        return CostPlan(chunks=chunks, characters=len(text), cost=self._quotas.price(len(chunks)), text=text)

    # --- starting --------------------------------------------------------------------------

    async def start(
        self,
        requester: Requester,
        text: str,
        *,
        voice_url: str | None,
        params: TTSParams,
        target: DeliveryTarget,
        on_event: EventCallback | None = None,
        plan: CostPlan | None = None,
        clip_sha256: str | None = None,
        voice_name: str | None = None,
        fresh: bool = False,
    ) -> SpeechJob:
        """Validate, reserve and persist, then run in the background (see the module doc).

        ``plan`` is ``plan(text)`` when the caller already made it (the /speak cog plans once,
        in its checks before deferring); otherwise it is made here. ``text`` is the spoken text
        (``bot.speech.cleanup`` ran before). Audio cache (``bot.speech.cached``): when every
        chunk is cached for this voice (``clip_sha256``: the reference clip's bytes; without
        ``voice_url`` the built-in voice) the job is served from it, free; ``fresh`` (Re-roll)
        skips the lookup and the new take replaces the cached one. Raises before anything is
        written: ``InvalidTTSRequest``, ``GuildPaused``, ``SubmissionsPaused``, ``QuotaExceeded``.
        """
        if self._closed:
            raise RuntimeError("the speech service is closed")
        if plan is None:
            plan = self.plan(text)
        elif plan.text != text.strip():
            raise ValueError("the plan was made for another text")
        # One validation per request: the tuning and the voice URL are the same for every
        # chunk, and plan() already bounded each chunk's text.
        voice_url = self._client.validate(
            TTSRequest(text=plan.chunks[0], audio_url=voice_url, params=params)
        ).audio_url
        clip = BUILTIN_VOICE if voice_url is None else clip_sha256
        if self._cache is not None and not fresh:
            hit = await self._cache.replay(requester, plan.text, plan, voice_url, clip, voice_name, params,
                                           on_event)
            if hit is not None:
                task = self._spawn(hit.run(), name=f"speech-cached-{hit.job_id}")
                return SpeechJob(hit.job_id, hit.plan, requester, hit, task)
        await self._quotas.assert_guild_open(requester.guild_id)
        permit = await self._wallet.before_submit()
        job = NewJob(
            user_id=requester.user_id,
            user_display=requester.display_name,
            guild_id=requester.guild_id,
            channel_id=target.channel_id,
            text=text.strip(),
            parts=plan.chunks,
            voice_url=voice_url,
            params=params.model_dump(),
            delivery=dataclasses.asdict(target),
        )
        # Claimed before it exists, so a concurrent resume_pending never sees it unclaimed.
        self._claimed.add(job.id)
        try:
            reservation = await self._quotas.reserve(
                guild_id=requester.guild_id,
                user_id=requester.user_id,
                role_ids=requester.role_ids,
                requests=plan.requests,
                characters=plan.characters,
                job=job,
            )
        except BaseException:
            self._claimed.discard(job.id)
            await self._wallet.release_probe(permit)  # refused before any POST: not a probe
            raise
        if self._cache is None:
            sink = EventSink(on_event)
        else:  # the cache holds the audio before the listener hears of the completion
            take = self._cache.take(job.id, requester, job.text, plan, voice_url, clip, voice_name, params)
            sink = EventSink(self._cache.collector(take, on_event))
        sink.post(QuotaReserved(job.id, plan))
        run = JobRun(
            self._pipeline,
            job_id=job.id,
            reservation_id=reservation.id,
            key=str(requester.user_id),
            text=job.text,
            voice_url=voice_url,
            params=params,
            parts=[PartRun(index, chunk) for index, chunk in enumerate(plan.chunks)],
            sink=sink,
            permit=permit,
        )
        task = self._spawn(run.run(), name=f"speech-job-{job.id}")
        task.add_done_callback(lambda done: self._live_job_done(job.id, done))
        log.info("job %s reserved: %d chunk(s), %d characters, user %s", job.id, plan.requests,
                 plan.characters, requester.user_id)
        return SpeechJob(job.id, plan, requester, run, task)

    def _live_job_done(self, job_id: str, task: asyncio.Task[SpeechResult]) -> None:
        # (Reading the exception also keeps asyncio from warning that nobody retrieved it.)
        if task.cancelled() or task.exception() is not None:
            self._claimed.discard(job_id)
        # A completed job stays claimed until mark_delivered: it is being delivered live. If
        # that never happens, the next process's resume_pending delivers it.

    def _spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- after the fact --------------------------------------------------------------------

    async def mark_delivered(self, job_id: str) -> bool:
        """Record that the audio was delivered (completed -> delivered); False if it already was."""
        moved = await self._jobs.mark_delivered(job_id)
        self._claimed.discard(job_id)
        return moved

    async def get_job(self, job_id: str) -> JobRecord | None:
        return await self._jobs.get(job_id)

    # --- resuming --------------------------------------------------------------------------

    async def resume_pending(
        self, deliver: DeliverCallback, *, wait: bool = False, on_failed: FailedCallback | None = None
    ) -> int:
        """Take over the jobs a previous process left unfinished; return how many were taken.

        - ``submitted``: the parts with a ``request_id`` are polled again and downloaded (no new
          POST is ever sent on resume); when every part has audio the job completes, then
          ``deliver(job, result)`` is called once and the job is marked delivered.
        - ``completed`` but not delivered: the parts' media URLs are downloaded again and
          delivered the same way.
        - ``reserved``: never (fully) submitted. A part marked as being POSTed may have been
          charged and is committed; unmarked parts were never sent and are refunded (see
          ``bot.speech.runner``). Such a job, or a submitted one with an unsent or failed
          part, cannot produce its audio: it is settled and ends ``failed`` (then
          ``delivered``: there is no audio to hand over).
        - ``failed`` but not marked delivered: settled again (idempotent) and closed.

        ``delivered`` is recorded only after ``deliver`` returns, so a crash between the two
        re-delivers that job once at the next start: at-least-once, and at most one repeat per
        crash. A ``deliver`` that raises leaves the job undelivered for the next call.
        ``on_failed(job, user_message)``, if given, is called once a taken job has ended failed
        (and so is closed: the member's card can say why); not for a completed job whose
        download failed again (it stays for the next start). It is at-most-once: a crash right
        before it skips it. Errors in ``on_failed`` are logged.
        Without ``wait`` this returns once the work is started (the bot should not delay its
        start for polling); with ``wait=True`` once every taken job is finished.
        """
        records = await self._jobs.resumable()
        records += await self._jobs.list_by_status(JobState.RESERVED)
        started: list[asyncio.Task[Any]] = []
        for record in records:
            if record.id in self._claimed or self._closed:
                continue
            if not has_destination(record.delivery):
                continue
            self._claimed.add(record.id)
            started.append(self._spawn(self._resume(record, deliver, on_failed),
                                       name=f"speech-resume-{record.id}"))
        if started:
            log.info("resuming %d speech job(s)", len(started))
        if wait and started:
            await asyncio.wait(started)
        return len(started)

    async def _resume(
        self, record: JobRecord, deliver: DeliverCallback, on_failed: FailedCallback | None
    ) -> None:
        try:
            run = JobRun(
                self._pipeline,
                job_id=record.id,
                reservation_id=record.reservation_id,
                key=str(record.user_id),
                text=record.text,
                voice_url=record.voice_url,
                params=TTSParams.model_validate(record.params or {}),
                parts=parts_from_record(record),
                sink=EventSink(None),
                submit=False,
                job_state=record.status,
            )
            if record.status is JobState.FAILED:
                run.fail(SpeechFailed(record.error or "failed before the restart"))
            try:
                result = await run.run()
            except Exception as exc:
                log.warning("resumed job %s did not finish: %s", record.id, exc)
                if on_failed is not None:
                    await self._report_failure(record.id, on_failed)
                return
            fresh = await self._jobs.get(record.id)
            if fresh is None or fresh.delivered:
                return
            try:
                await deliver(resumed_job(fresh), result)
            except Exception:
                log.exception("delivering resumed job %s failed; it stays undelivered", record.id)
                return
            await self._jobs.mark_delivered(record.id)
            log.info("resumed job %s delivered", record.id)
        except Exception:
            log.exception("resuming job %s failed", record.id)
        finally:
            self._claimed.discard(record.id)

    async def _report_failure(self, job_id: str, on_failed: FailedCallback) -> None:
        closed = await self._jobs.get(job_id)
        if closed is None or closed.status is not JobState.DELIVERED:
            return  # e.g. completed, but the audio could not be fetched again: retried later
        refunded = False
        if closed.reservation_id is not None:
            reservation = await self._quotas.get_reservation(closed.reservation_id)
            refunded = reservation.committed_requests == 0
        try:
            await on_failed(resumed_job(closed, refunded=refunded),
                            closed.error or "The job could not be finished after a restart.")
        except Exception:
            log.exception("reporting the failure of resumed job %s failed", job_id)

    # --- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every background task. The database is left as it is: submitted jobs stay
        resumable by the next ``resume_pending``."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._claimed.clear()
