"""The speech pipeline's seams with the audio cache (``bot.cache``), kept out of the runner.

- ``find``: which chunks of a request are cached (per chunk, for the model the provider
  answered last). Nothing is written.
- ``replay``: every chunk is cached, so no job exists at all: no quota is reserved, no
  request is sent, nothing is written but the take. The member still gets the usual events
  in the usual order (``QuotaReserved`` with a ``cached`` $0 plan, one ``ChunkReady`` per
  chunk, ``Completed`` with a ``cached`` result) through an ``EventSink``, so the Discord
  card, voice playback and delivery need no second path.
- ``partial_plan``: some chunks are cached (a partial hit). The job is made as usual, but its
  plan lists those chunks in ``from_cache`` and prices only the others (their requests,
  characters and cost are what is reserved). The cached chunks become ``cached`` parts of
  the job (``bot.speech.runner``): never sent, never charged, their audio handed to the run
  at once, so ``ChunkReady`` stays in chunk order across cached and made parts and a cached
  chunk 0 plays at once. The result says how many chunks came from the cache
  (``SpeechResult.cached_chunks``) and costs what the made ones cost.
- ``ChunkCollector`` + ``fill``: a paid job's listener is wrapped to keep each made chunk's
  audio and model id as it arrives; on ``Completed`` — before the listener (the card) hears of
  it, so whoever sees "done" can replay it for free — its take is recorded and its made
  chunks are stored (replacing older takes of the same key: that is what Re-roll does; the
  cached chunks are already there). Filling never fails a job: an error is logged and the
  next request is a miss. Resumed jobs (after a restart) are not cached: their chunks were
  never held in this process's memory.

Only a request whose voice is known by its bytes is cached: the built-in voice, or a clip
whose SHA-256 the caller passed. A clip known only by its URL is never cached (the URL of
the same Discord attachment changes, and different bytes can sit behind one URL).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection
from decimal import Decimal

from bot.audio import AudioError, join_wavs, wav_info
from bot.cache import AudioCache, Lookup, Take
from bot.clock import Clock
from bot.config import Settings
from bot.gateway.models import TTSParams
from bot.quotas.errors import QuotaExceeded
from bot.quotas.service import QuotaService
from bot.speech.errors import SpeechFailed
from bot.speech.events import (
    ChunkReady,
    Completed,
    CostPlan,
    Failed,
    QuotaReserved,
    Requester,
    SpeechEvent,
    SpeechResult,
)
from bot.speech.progress import EventSink
from bot.store.ids import new_id

log = logging.getLogger(__name__)

EventCallback = Callable[[SpeechEvent], Awaitable[None]]
REPLAY_FAILED = "The saved audio could not be played back; nothing was charged. Please try again."


def free_plan(plan: CostPlan) -> CostPlan:
    every = tuple(range(len(plan.chunks)))
    return dataclasses.replace(plan, cost=Decimal("0"), cached=True, from_cache=every)


class Replay:
    """A request served from the cache; ``SpeechJob`` drives it like a run (nothing to cancel)."""

    def __init__(self, job_id: str, text: str, plan: CostPlan, audio: list[bytes], params: TTSParams,
                 voice_url: str | None, pause_ms: int, on_event: EventCallback | None) -> None:
        self.job_id = job_id
        self.plan = plan
        self._text = text
        self._audio = audio
        self._params = params
        self._voice_url = voice_url
        self._pause_ms = pause_ms
        self._sink = EventSink(on_event)

    @property
    def called_from_listener(self) -> bool:
        return self._sink.in_listener()

    def request_cancel(self) -> bool:
        return False

    async def run(self) -> SpeechResult:
        """Emit the usual events (see the module docstring) and return the result."""
        job_id, audio, params, sink = self.job_id, self._audio, self._params, self._sink
        try:
            sink.post(QuotaReserved(job_id, self.plan))
            for index, chunk in enumerate(audio):
                sink.post(ChunkReady(job_id, index, len(audio), chunk))
            try:
                joined, duration = await asyncio.to_thread(_join, audio, self._pause_ms)
            except AudioError as exc:  # chunks of different formats (the cache checked each one)
                log.warning("request %s: cached chunks could not be joined: %s", job_id, exc)
                failure = SpeechFailed(str(exc), user_message=REPLAY_FAILED)
                sink.post(Failed(job_id, user_message=REPLAY_FAILED, refunded=True))
                await sink.close()
                raise failure from None
            result = SpeechResult(
                job_id=job_id, audio=joined, duration=duration, size=len(joined), cost=Decimal("0"),
                chunks=len(audio), text=self._text, exaggeration=params.exaggeration,
                temperature=params.temperature, cfg=params.cfg, voice_url=self._voice_url, cached=True,
                cached_chunks=len(audio),
            )
            sink.post(Completed(job_id, result))
            await sink.close()
            return result
        except asyncio.CancelledError:
            await sink.abort()
            raise


class CacheSeam:
    """What ``SpeechService`` asks of the cache: which chunks are cached, a replay on a full
    hit, the plan of a partial one, a fill after a job."""

    def __init__(self, cache: AudioCache, quotas: QuotaService, settings: Settings, clock: Clock) -> None:
        self.cache = cache
        self._quotas = quotas
        self._settings = settings
        self._clock = clock

    def take(
        self, take_id: str, requester: Requester, text: str, plan: CostPlan, voice_url: str | None,
        clip: str | None, voice_name: str | None, params: TTSParams, model_id: str | None = None,
    ) -> Take:
        return Take(id=take_id, user_id=requester.user_id, guild_id=requester.guild_id, text=text,
                    chunks=plan.chunks, voice_url=voice_url, voice_name=voice_name, clip_sha256=clip,
                    params=params, model_id=model_id, created_at=self._clock.now())

    async def find(self, plan: CostPlan, clip: str | None, params: TTSParams) -> Lookup | None:
        """Which of the plan's chunks are cached (None: nothing can be, see ``AudioCache``)."""
        return await self.cache.lookup_chunks(plan.chunks, clip, params)

    def partial_plan(self, plan: CostPlan, found: Lookup) -> CostPlan:
        """The plan of a partial hit: only the chunks not in ``found`` are requested and priced."""
        made = [chunk for index, chunk in enumerate(plan.chunks) if index not in found.hits]
        return dataclasses.replace(plan, from_cache=tuple(sorted(found.hits)),
                                   characters=sum(len(chunk) for chunk in made),
                                   cost=self._quotas.price(len(made)))

    async def replay(
        self, requester: Requester, text: str, plan: CostPlan, voice_url: str | None, clip: str | None,
        voice_name: str | None, params: TTSParams, on_event: EventCallback | None, found: Lookup,
    ) -> Replay:
        """The ``Replay`` of a request whose every chunk is in ``found`` (``Lookup.complete``).

        Free, but not a way around moderation: a paused server stays paused and a blocked
        member stays blocked (``GuildPaused`` / ``QuotaExceeded``). No cooldown or daily
        limit applies: nothing is spent."""
        if not found.complete:
            raise ValueError("a replay needs every chunk cached")
        audio = [found.hits[index].audio for index in range(len(plan.chunks))]
        await self._quotas.assert_guild_open(requester.guild_id)
        guild_id = requester.guild_id
        if guild_id is not None and requester.user_id in await self._quotas.admin.blocked(guild_id):
            raise QuotaExceeded("You are blocked from using the bot on this server.", code="blocked")
        job_id = new_id()
        await self.cache.record_take(
            self.take(job_id, requester, text, plan, voice_url, clip, voice_name, params, found.model_id))
        log.info("request %s served from the audio cache: %d chunk(s), user %s", job_id, len(plan.chunks),
                 requester.user_id)
        return Replay(job_id, text, free_plan(plan), audio, params, voice_url,
                      self._settings.chatterbox_chunk_pause_ms, on_event)

    def collector(self, take: Take, listener: EventCallback | None,
                  from_cache: Collection[int] = ()) -> ChunkCollector:
        """The listener wrapper of a paid job: keeps its made chunks (not those ``from_cache``)
        and, on ``Completed``, fills the cache before passing the event on (whoever sees
        "done" can replay it free)."""
        return ChunkCollector(listener, lambda collector: self.fill(take, collector), skip=from_cache)

    async def fill(self, take: Take, collector: ChunkCollector) -> None:
        """Record a completed job's take and cache its made chunks; errors are logged, never raised."""
        cache = self.cache
        try:
            take = dataclasses.replace(take, model_id=collector.model_id)
            await cache.record_take(take)
            made = [i for i in range(len(take.chunks)) if i not in collector.skip]
            if all(i in collector.audio for i in made):
                chunks = [(take.chunks[i], collector.audio[i]) for i in made]
                stored = await cache.put(chunks, take.clip_sha256, take.params, collector.model_id)
                log.debug("job %s: %d chunk(s) cached", take.id, stored)
        except Exception:
            log.exception("could not cache the audio of job %s (the next request is a miss)", take.id)


def _join(audio: list[bytes], pause_ms: int) -> tuple[bytes, float]:
    joined = join_wavs(audio, pause_ms=pause_ms) if len(audio) > 1 else audio[0]
    return joined, wav_info(joined).duration


class ChunkCollector:
    """A job's listener wrapper that keeps each made chunk's audio and model id (chunks in
    ``skip`` came from the cache and are already there), and runs ``on_completed`` before
    the listener hears of the ``Completed`` event."""

    def __init__(self, listener: EventCallback | None,
                 on_completed: Callable[[ChunkCollector], Awaitable[None]] | None = None,
                 skip: Collection[int] = ()) -> None:
        self._listener = listener
        self._on_completed = on_completed
        self.skip = frozenset(skip)
        self.audio: dict[int, bytes] = {}
        self.model_id: str | None = None

    async def __call__(self, event: SpeechEvent) -> None:
        if isinstance(event, ChunkReady) and event.index not in self.skip:
            self.audio[event.index] = event.audio
            self.model_id = self.model_id or event.model_id
        elif isinstance(event, Completed) and self._on_completed is not None:
            await self._on_completed(self)
        if self._listener is not None:
            await self._listener(event)
