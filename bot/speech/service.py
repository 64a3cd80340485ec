"""``SpeechService``: text in, a persisted job out, audio at the end (DESIGN rules 1-6).

``start`` checks everything that can be checked before money or quota is touched — the text
(length, chunk count), the tuning values and voice URL, the guild's pause, the bot-wide 402
pause — and only then reserves the quota and writes the job in ONE transaction
(``QuotaService.reserve(job=...)``). Any refusal therefore leaves nothing behind: no job, no
reservation (rule 6). The work then runs in a background task (``bot.speech.runner``) and
the caller gets a ``SpeechJob`` handle plus events (``bot.speech.events``). The audio cache
is asked first (``bot.speech.cached``): a request whose every chunk is cached is a free replay
with no job row; one whose chunks are partly cached reserves, sends and pays only the others
(its cached chunks are ``cached`` parts of the job, written with it).

Delivery: the service never posts anything. For a live job the Discord layer (or the CLI)
takes the audio from ``Completed`` / ``SpeechJob.result()``, calls ``begin_delivery`` (and
posts only if that returns True), delivers it, then calls ``mark_delivered``. A failed job
needs no delivery: its ``Failed`` event says why, and it is marked delivered by the service.

Owned jobs (DESIGN rule 1): each service has an ``owner`` id (host, pid, random part). A job
it writes carries that owner and a lease (``JOB_LEASE_SECONDS``), which a background task
renews while the job is worked on here; every write the pipeline makes names the owner, so
a process that lost a job (its lease ran out while it was stuck) can no longer change it.
The reconciler (``start_reconciler``: a ``resume_pending`` pass every
``JOB_RECONCILE_SECONDS`` for the life of the process) claims the open jobs whose lease
expired — a crashed or vanished process's, or ones this process left during a database
outage — and finishes them; on PostgreSQL several processes reconcile side by side
(``FOR UPDATE SKIP LOCKED``), each only for its own shards' guilds. Every job has a deadline
(``JOB_DEADLINE_SECONDS``) after which the reconciler settles and closes it.

Inside one process, every job being handled here (started, resumed, or completed and waiting
for delivery) is "claimed" in memory and the reconciler skips it. ``stop`` is the clean stop
(see its docstring); ``close`` cancels what is left and releases the leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import literal_column, or_

from bot.cache import BUILTIN_VOICE, Lookup, cache_ref
from bot.clock import Clock
from bot.config import Settings
from bot.gateway.client import ChatterboxClient
from bot.gateway.errors import InvalidTTSRequest
from bot.gateway.models import TTSParams, TTSRequest
from bot.gateway.ratelimit import RateGuard
from bot.quotas.service import QuotaService
from bot.quotas.wallet import SubmissionsPaused, WalletGuard
from bot.speech.cached import CacheSeam, Replay
from bot.speech.chunking import split_text
from bot.speech.errors import DeliveryNotMade, ServiceStopping, SpeechFailed, SpeechInterrupted
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
from bot.speech.voice_ref import VoiceUrlResolver, is_reference, referenced_voice
from bot.store.database import Database, DatabaseUnavailable
from bot.store.ids import new_id
from bot.store.jobs import JobRecord, JobsRepository, JobState, NewJob, PartState
from bot.store.tables import jobs as jobs_table

log = logging.getLogger(__name__)

EventCallback = Callable[[SpeechEvent], Awaitable[None]]
DeliverCallback = Callable[[ResumedJob, SpeechResult], Awaitable[None]]
#: ``on_failed(job, user_message)``: a resumed job ended without audio (close its card).
FailedCallback = Callable[[ResumedJob, str], Awaitable[None]]

DEADLINE_MESSAGE = (
    "This request could not be finished in time; whatever was charged is shown in /quota history."
)
ORPHAN_MESSAGE = "The command that asked for this audio stopped before it was ready."
#: ``jobs.error`` of a job closed while it was being delivered: posted at most once, maybe not.
UNCERTAIN_DELIVERY = "stopped while being delivered: it may not have been posted; not posted again"
RESTARTING = "The bot is restarting; your audio will be posted here when it is back."


def new_owner_id() -> str:
    """This process's id in ``jobs.owner``: readable (host, pid) and unique (random part)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{new_id()[:8]}"


def _unstorable(value: str) -> str | None:
    """What in ``value`` neither database can hold: PostgreSQL text refuses NUL, and a lone
    surrogate cannot be encoded as UTF-8 by either driver."""
    if "\x00" in value:
        return "a NUL character"
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        return "a broken character (a lone UTF-16 surrogate)"
    return None


def refuse_unstorable(value: str, field: str, name: str) -> None:
    """``InvalidTTSRequest`` before anything is reserved when ``value`` cannot be stored."""
    found = _unstorable(value)
    if found is not None:
        raise InvalidTTSRequest(field, f"{name} contains {found}; remove it and try again.")


def storable(value: str) -> str:
    """``value`` without what the database cannot hold (for names we only display)."""
    return "".join(ch for ch in value if ch != "\x00" and not "\ud800" <= ch <= "\udfff")


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
        return (f"SpeechJob({self.job_id!r}, chunks={len(self.plan.chunks)}, "
                f"from_cache={len(self.plan.from_cache)}, done={self.done()})")

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
        voice_urls: VoiceUrlResolver | None = None,
    ) -> None:
        self._client = client
        self._cache = cache
        self._quotas = quotas
        self._wallet = wallet
        self._settings = settings
        self._clock = clock
        self._jobs = JobsRepository(db, clock)
        self.owner = new_owner_id()
        self._lease = timedelta(seconds=settings.job_lease_seconds)
        self._pipeline = Pipeline(client=client, jobs=self._jobs, quotas=quotas, wallet=wallet,
                                  limiter=limiter, settings=settings, clock=clock, owner=self.owner,
                                  cache=cache.cache if cache is not None else None,
                                  voice_urls=voice_urls)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._claimed: set[str] = set()  # jobs handled here now (module docstring)
        self._delivering: set[str] = set()  # begin_delivery called, mark_delivered not yet
        self._runs: dict[str, JobRun] = {}
        self._replays: set[str] = set()  # cache replays: no job row, nothing charged
        self._reconciler: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._stopping = False
        self._closed = False

    # --- planning --------------------------------------------------------------------------

    def plan(self, text: str, *, max_chars: int | None = None) -> CostPlan:
        """Split ``text`` into chunks and price it; ``InvalidTTSRequest`` when it cannot be spoken.

        ``max_chars``: a lower limit of the caller's (a Discord option's), when it has one.
        """
        text = text.strip()
        settings = self._settings
        if not text:
            raise InvalidTTSRequest("text", "The text is empty; write something to speak.")
        refuse_unstorable(text, "text", "The text")
        limit = settings.chatterbox_max_text_chars
        if max_chars is not None:
            limit = min(limit, max_chars)
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
        ``voice_url`` the built-in voice) the job is served from it, free; when some are, only
        the others are reserved, sent and charged (the returned job's ``plan`` says which);
        ``fresh`` (Re-roll) skips the lookup and the new take replaces the cached one. Raises
        before anything is written: ``InvalidTTSRequest``, ``GuildPaused``,
        ``SubmissionsPaused``, ``QuotaExceeded``.

        ``voice_url`` is a clip URL, or a saved voice's reference ``voice:<id>``
        (``bot.speech.voice_ref``): the job stores the reference and each part's POST gets a
        URL made at that moment. ``voice_name`` names the voice on the card, in the cache's
        take and in the message when a saved voice is deleted before a part is sent.
        """
        if self._stopping:
            raise ServiceStopping()
        if plan is None:
            plan = self.plan(text)
        elif plan.text != text.strip():
            raise ValueError("the plan was made for another text")
        if voice_url is not None:
            refuse_unstorable(voice_url, "audio_url", "The voice link")
        reference = voice_url.strip() if voice_url is not None and is_reference(voice_url.strip()) else None
        if reference is not None and referenced_voice(reference) is None:
            raise InvalidTTSRequest("audio_url", "That saved voice reference is not valid.")
        # One validation per request: the tuning and the voice URL are the same for every
        # chunk, and plan() already bounded each chunk's text. A saved voice's URL is made
        # (and checked by the client) at each POST instead.
        voice_url = self._client.validate(
            TTSRequest(text=plan.chunks[0], audio_url=None if reference else voice_url, params=params)
        ).audio_url or reference
        clip = BUILTIN_VOICE if voice_url is None else clip_sha256
        found = None
        if self._cache is not None and not fresh:
            found = await self._cache.find(plan, clip, params)
            if found is not None and found.complete:
                hit = await self._cache.replay(requester, plan.text, plan, voice_url, clip, voice_name,
                                               params, on_event, found)
                self._replays.add(hit.job_id)  # no job row: delivering it claims nothing
                task = self._spawn(hit.run(), name=f"speech-cached-{hit.job_id}")
                return SpeechJob(hit.job_id, hit.plan, requester, hit, task)
            if found is not None and found.hits:  # a partial hit: only the other chunks are made
                plan = self._cache.partial_plan(plan, found)
        hits = found.hits if found is not None else {}
        await self._quotas.assert_guild_open(requester.guild_id)
        permit = await self._wallet.before_submit()
        job = NewJob(
            user_id=requester.user_id,
            user_display=storable(requester.display_name) or "member",
            guild_id=requester.guild_id,
            channel_id=target.channel_id,
            text=text.strip(),
            parts=plan.chunks,
            voice_url=voice_url,
            params=params.model_dump(),
            delivery=dataclasses.asdict(target),
            owner=self.owner,
            lease_until=self._clock.now() + self._lease,
            deadline=self._clock.now() + timedelta(seconds=self._settings.job_deadline_seconds),
            cached_parts={index: cache_ref(hit.key) for index, hit in hits.items()},
        )
        # Claimed before it exists, so a concurrent resume_pending never sees it unclaimed.
        self._claimed.add(job.id)
        self._ensure_renewer()
        try:
            reservation = await self._quotas.reserve(
                guild_id=requester.guild_id,
                user_id=requester.user_id,
                role_ids=requester.role_ids,
                requests=plan.requests,
                characters=plan.characters,
                job=job,
                member_limits=not requester.operator,
            )
        except BaseException:
            self._claimed.discard(job.id)
            await self._wallet.release_probe(permit)  # refused before any POST: not a probe
            raise
        if self._cache is None:
            sink = EventSink(on_event)
        else:  # the cache holds the audio before the listener hears of the completion
            take = self._cache.take(job.id, requester, job.text, plan, voice_url, clip, voice_name, params)
            sink = EventSink(self._cache.collector(take, on_event, plan.from_cache))
        sink.post(QuotaReserved(job.id, plan))
        run = JobRun(
            self._pipeline,
            job_id=job.id,
            reservation_id=reservation.id,
            key=str(requester.user_id),
            text=job.text,
            voice_url=voice_url,
            params=params,
            parts=[self._new_part(index, chunk, found) for index, chunk in enumerate(plan.chunks)],
            sink=sink,
            permit=permit,
            guild_id=requester.guild_id,
            user_id=requester.user_id,
            voice_name=voice_name,
        )
        self._runs[job.id] = run
        task = self._spawn(run.run(), name=f"speech-job-{job.id}")
        task.add_done_callback(lambda done: self._live_job_done(job.id, done))
        log.info("job %s reserved: %d chunk(s) to make, %d from the cache, %d characters, user %s", job.id,
                 plan.requests, len(plan.from_cache), plan.characters, requester.user_id)
        return SpeechJob(job.id, plan, requester, run, task)

    @staticmethod
    def _new_part(index: int, chunk: str, found: Lookup | None) -> PartRun:
        """A new job's part: to be made, or (a partial hit) filled from the cache at once."""
        hit = found.hits.get(index) if found is not None else None
        if hit is None:
            return PartRun(index, chunk)
        return PartRun(index, chunk, state=PartState.CACHED, media_url=cache_ref(hit.key), audio=hit.audio,
                       model_id=found.model_id if found is not None else None)

    def _live_job_done(self, job_id: str, task: asyncio.Task[SpeechResult]) -> None:
        # (Reading the exception also keeps asyncio from warning that nobody retrieved it.)
        self._runs.pop(job_id, None)
        if task.cancelled() or task.exception() is not None:
            # Ended, or left open (database away, taken over): if open, its lease is no longer
            # renewed here, so it expires and a reconciler (any process's) finishes it.
            self._claimed.discard(job_id)
        # A completed job stays claimed until mark_delivered: it is being delivered live. If
        # that never happens, its lease runs out and a reconciler delivers it.
        self._idle_changed()

    def _spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._tasks.discard(finished)
            self._idle_changed()

        task.add_done_callback(done)
        return task

    def _ensure_renewer(self) -> None:
        if self._renewer is None and not self._closed:
            self._renewer = asyncio.create_task(self._renew_forever(), name="speech-lease-renewer")

    # --- delivery ----------------------------------------------------------------------

    async def begin_delivery(self, job_id: str) -> bool:
        """Claim the right to hand a completed job's audio to Discord (completed -> delivering).

        Call it right before posting; post only on True. False means the job is not this
        process's to deliver (another one took it over, or it was delivered already). From
        here on the job is never posted again, whatever happens (see the README). A replay
        from the audio cache has no job row and nothing to claim: always True."""
        if job_id in self._replays:
            return True
        if self._stopping:
            # Stopping: Discord may close under the post. The job stays completed, its lease is
            # released at close, and the next process posts it (never this one and that one).
            self._claimed.discard(job_id)
            self._idle_changed()
            return False
        moved = await self._jobs.transition(job_id, JobState.COMPLETED, JobState.DELIVERING, owner=self.owner)
        if moved:
            self._delivering.add(job_id)
        else:
            self._claimed.discard(job_id)  # not ours to deliver: nothing to wait for here
            self._idle_changed()
        return moved

    async def mark_delivered(self, job_id: str) -> bool:
        """Record that the audio was delivered (-> delivered); False if it already was."""
        if job_id in self._replays:
            self._replays.discard(job_id)
            return False  # nothing was recorded for it
        try:
            moved = await self._jobs.mark_delivered(job_id)
        finally:
            self._delivering.discard(job_id)
            self._claimed.discard(job_id)
            self._idle_changed()
        return moved

    async def get_job(self, job_id: str) -> JobRecord | None:
        return await self._jobs.get(job_id)

    # --- the reconciler -------------------------------------------------------------------

    def shard_condition(self) -> Any | None:
        """SQL: the jobs of this process's guilds (``DISCORD_SHARD_COUNT``/``DISCORD_SHARD_IDS``).

        Discord puts a guild on shard ``(guild_id >> 22) % shard_count``; jobs without a guild
        (the CLI's) belong to the process that runs shard 0."""
        ids = self._settings.shard_ids()
        count = self._settings.discord_shard_count
        if ids is None or count is None:
            return None
        # Inline integers: PostgreSQL has ``bigint >> integer`` but no ``bigint >> bigint``.
        shard = jobs_table.c.guild_id.op(">>")(literal_column("22")).op("%")(literal_column(str(int(count))))
        condition = shard.in_(list(ids))
        if 0 in ids:
            condition = or_(jobs_table.c.guild_id.is_(None), condition)
        return condition

    async def resume_pending(
        self, deliver: DeliverCallback, *, wait: bool = False, on_failed: FailedCallback | None = None
    ) -> int:
        """One reconciler pass: claim the open jobs nobody holds (lease expired or released)
        and finish them; return how many were taken.

        - ``reserved``/``submitted``: parts never sent are POSTed now (a ``pending`` part was
          provably never sent); ``submitting`` ones may have been charged and cannot be
          recovered (committed; the job fails and says so); ``submitted`` ones are polled again.
          ``cached`` parts (a partial cache hit) are read from the cache again before any
          POST; one whose entry is gone fails the job (``runner.CACHED_PART_GONE``; unsent
          parts refunded, made ones committed). When every part has audio the job completes,
          then it moves to ``delivering``, ``deliver(job, result)`` is called once, and it is
          marked delivered.
        - ``completed``: the media is downloaded again and delivered the same way.
        - ``delivering``: it may have been posted, so it is closed as delivered, never posted
          again (the README names this window).
        - ``failed`` but not closed: settled again (idempotent) and closed.
        - past its deadline (``JOB_DEADLINE_SECONDS`` after it was made): settled, closed,
          and ``on_failed`` tells the member. No job stays open forever.
        - without a Discord destination (the CLI's, whose process stopped): settled and closed.

        ``deliver`` raising ``DeliveryNotMade`` means nothing was posted: the job goes back to
        ``completed`` for a later pass. Any other exception from ``deliver`` may have come after
        the post: the job is closed, never re-posted. ``on_failed(job, user_message)`` is called
        once a taken job ended without audio (errors in it are logged). Without ``wait`` this
        returns once the work is started; with ``wait=True`` once every taken job is finished.
        """
        if self._stopping:
            return 0
        self._ensure_renewer()
        now = self._clock.now()
        records = await self._jobs.claim_expired(
            self.owner, until=now + self._lease, shard=self.shard_condition()
        )
        started: list[asyncio.Task[Any]] = []
        for record in records:
            if record.id in self._claimed:
                continue  # running here already (its lease lapsed while the database was away)
            self._claimed.add(record.id)
            started.append(self._spawn(self._resume(record, deliver, on_failed),
                                       name=f"speech-resume-{record.id}"))
        if started:
            log.info("reconciler took %d speech job(s)", len(started))
        if wait and started:
            await asyncio.wait(started)
        return len(started)

    def start_reconciler(
        self, deliver: DeliverCallback, *, on_failed: FailedCallback | None = None, first_pass: bool = True
    ) -> None:
        """Run ``resume_pending`` every ``JOB_RECONCILE_SECONDS`` for the life of the service.

        ``first_pass=False``: the first pass comes one period from now, for a caller that runs
        its own first pass right away (``resume_pending(wait=True)``, which then takes every
        job left open and waits for them) while the reconciler already covers the meantime."""
        if self._reconciler is None and not self._stopping:
            self._reconciler = asyncio.create_task(self._reconcile_forever(deliver, on_failed, first_pass),
                                                   name="speech-reconciler")

    async def _reconcile_forever(
        self, deliver: DeliverCallback, on_failed: FailedCallback | None, first_pass: bool = True
    ) -> None:
        if not first_pass:
            await self._clock.sleep(self._settings.job_reconcile_seconds)
        while not self._stopping:
            try:
                await self.resume_pending(deliver, on_failed=on_failed)
            except Exception:  # the database is away: try again at the next pass
                log.warning("reconciler pass failed", exc_info=True)
            await self._clock.sleep(self._settings.job_reconcile_seconds)

    async def _renew_forever(self) -> None:
        """Keep the leases of the jobs this process works on (one UPDATE per period)."""
        while True:
            await self._clock.sleep(self._lease.total_seconds() / 3)
            if not self._claimed:
                continue
            try:
                await self._jobs.renew_leases(self.owner, self._clock.now() + self._lease, self._claimed)
            except Exception:
                log.warning("could not renew job leases (the database is away?)", exc_info=True)

    def _deadline_of(self, record: JobRecord) -> datetime:
        return record.deadline or record.created_at + timedelta(seconds=self._settings.job_deadline_seconds)

    async def _resume(
        self, record: JobRecord, deliver: DeliverCallback, on_failed: FailedCallback | None
    ) -> None:
        settled = False
        try:
            settled = await self._resume_claimed(record, deliver, on_failed)
        except SpeechInterrupted:
            pass
        except DatabaseUnavailable:
            log.warning("resuming job %s: the database is away; the next pass retries", record.id)
        except Exception:
            log.exception("resuming job %s failed", record.id)
        finally:
            self._claimed.discard(record.id)
            self._delivering.discard(record.id)
            self._idle_changed()
            if not settled and not self._stopping:
                # Left open (a download failed, the database blinked): let the next pass take it.
                with contextlib.suppress(Exception):
                    await self._jobs.release_leases(self.owner, [record.id])

    async def _resume_claimed(
        self, record: JobRecord, deliver: DeliverCallback, on_failed: FailedCallback | None
    ) -> bool:
        """Finish one claimed job (see ``resume_pending``); True once it is closed."""
        owner = self.owner
        if record.status is JobState.DELIVERING:
            log.warning("job %s was being delivered when its process stopped; it may have been "
                        "posted, so it is not posted again", record.id)
            return await self._jobs.transition(record.id, JobState.DELIVERING, JobState.DELIVERED,
                                               owner=owner, error=UNCERTAIN_DELIVERY)
        overdue = self._clock.now() >= self._deadline_of(record)
        if record.status is JobState.COMPLETED and (overdue or not has_destination(record.delivery)):
            # Charged and settled already; nothing can be handed over any more.
            if not await self._jobs.transition(record.id, JobState.COMPLETED, JobState.DELIVERED, owner=owner,
                                               error=DEADLINE_MESSAGE if overdue else ORPHAN_MESSAGE):
                log.warning("job %s changed under the reconciler; left to its new owner", record.id)
                return True
            if overdue and on_failed is not None:
                await self._report_failure(record.id, on_failed)
            return True
        permit = None
        submit = record.status in (JobState.RESERVED, JobState.SUBMITTED) and not overdue \
            and has_destination(record.delivery)
        if submit:
            try:
                permit = await self._wallet.before_submit()
            except SubmissionsPaused:
                submit = False
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
            permit=permit,
            submit=submit,
            job_state=record.status,
            guild_id=record.guild_id,
            user_id=record.user_id,
        )
        self._runs[record.id] = run
        try:
            if record.status is JobState.FAILED:
                run.fail(SpeechFailed(record.error or "failed before the restart"))
            elif overdue:
                run.fail(SpeechFailed("past its deadline", user_message=DEADLINE_MESSAGE))
            elif not has_destination(record.delivery):
                run.fail(SpeechFailed("its requester stopped", user_message=ORPHAN_MESSAGE))
            try:
                result = await run.run()
            except SpeechInterrupted:
                return False
            except Exception as exc:
                log.warning("resumed job %s did not finish: %s", record.id, exc)
                closed = await self._jobs.get(record.id)
                if closed is None or closed.status is not JobState.DELIVERED:
                    return False  # e.g. completed, but the audio could not be fetched again
                if on_failed is not None and has_destination(record.delivery):
                    await self._report_failure(record.id, on_failed)
                return True
        finally:
            self._runs.pop(record.id, None)
        fresh = await self._jobs.get(record.id)
        if fresh is None or fresh.delivered or not await self.begin_delivery(record.id):
            return True
        try:
            await deliver(resumed_job(fresh), result)
        except DeliveryNotMade as exc:
            log.warning("delivering resumed job %s: nothing was posted (%s); it is tried again",
                        record.id, exc)
            if not await self._jobs.transition(record.id, JobState.DELIVERING, JobState.COMPLETED,
                                               owner=owner):
                log.warning("job %s changed while it was being delivered; left to its new owner", record.id)
            self._delivering.discard(record.id)
            return False
        except Exception:
            log.exception("delivering resumed job %s failed after it may have been posted; "
                          "it is not posted again", record.id)
            if not await self._jobs.transition(record.id, JobState.DELIVERING, JobState.DELIVERED,
                                               owner=owner, error=UNCERTAIN_DELIVERY):
                log.warning("job %s was closed by another process meanwhile", record.id)
            return True
        if await self._jobs.mark_delivered(record.id, owner=owner):
            log.info("resumed job %s delivered", record.id)
        else:
            log.warning("job %s was posted but closed by another process meanwhile", record.id)
        return True

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

    # --- stopping --------------------------------------------------------------------------

    def _idle_changed(self) -> None:
        if not self._delivering and not self._tasks:
            self._idle.set()

    async def stop(self, grace: float | None = None) -> None:
        """A clean stop (SIGTERM, SIGINT): take no new jobs, leave every job recoverable.

        Jobs stop where that is safe: a POST on the wire and the write of its answer finish,
        waits and downloads are cut (the jobs stay open, their leases released, so the next
        process or another one continues them at once). Deliveries in progress (``delivering``)
        are given up to ``grace`` seconds (``SHUTDOWN_GRACE_SECONDS``) to post and be recorded.
        Then ``close`` cancels whatever is left."""
        if self._stopping:
            return
        self._stopping = True
        grace = self._settings.shutdown_grace_seconds if grace is None else grace
        if self._reconciler is not None:
            self._reconciler.cancel()
            await asyncio.gather(self._reconciler, return_exceptions=True)
        for run in list(self._runs.values()):
            run.suspend(RESTARTING)
        self._idle.clear()
        self._idle_changed()
        if not self._idle.is_set() and grace > 0:
            # Real seconds: an operator's stop does not follow the pipeline's clock.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout=grace)

    async def close(self) -> None:
        """Stop (without grace if ``stop`` was not called), cancel every background task, and
        release this process's leases so its open jobs can be taken over at once."""
        if not self._stopping:
            await self.stop(grace=0)
        self._closed = True
        tasks = [t for t in (*self._tasks, self._renewer) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._claimed.clear()
        self._delivering.clear()
        try:
            released = await self._jobs.release_leases(self.owner)
            if released:
                log.info("released %d job lease(s) for the next process", released)
        except Exception:
            log.warning("could not release job leases; they expire by themselves", exc_info=True)
