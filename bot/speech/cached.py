"""The speech pipeline's two seams with the audio cache (``bot.cache``), kept out of the runner.

- ``replay``: every chunk of a request is cached, so no job exists at all: no quota is
  reserved, no request is sent, nothing is written but the take. The member still gets the
  usual events in the usual order (``QuotaReserved`` with a ``cached`` $0 plan, one
  ``ChunkReady`` per chunk, ``Completed`` with a ``cached`` result) through an
  ``EventSink``, so the Discord card, voice playback and delivery need no second path.
- ``ChunkCollector`` + ``fill``: a paid job's listener is wrapped to keep each chunk's audio
  and model id as it arrives; on ``Completed`` — before the listener (the card) hears of it,
  so whoever sees "done" can replay it for free — its take is recorded and its chunks are
  stored (replacing older takes of the same key: that is what Re-roll does). Filling never
  fails a job: an error is logged and the next request is a miss. Resumed jobs (after a
  restart) are not cached: their chunks were never held in this process's memory.

Only a request whose voice is known by its bytes is cached: the built-in voice, or a clip
whose SHA-256 the caller passed. A clip known only by its URL is never cached (the URL of
the same Discord attachment changes, and different bytes can sit behind one URL).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal

from bot.audio import join_wavs, wav_info
from bot.cache import AudioCache, Take
from bot.clock import Clock
from bot.config import Settings
from bot.gateway.models import TTSParams
from bot.quotas.errors import QuotaExceeded
from bot.quotas.service import QuotaService
from bot.speech.events import (
    ChunkReady,
    Completed,
    CostPlan,
    QuotaReserved,
    Requester,
    SpeechEvent,
    SpeechResult,
)
from bot.speech.progress import EventSink
from bot.store.ids import new_id

log = logging.getLogger(__name__)

EventCallback = Callable[[SpeechEvent], Awaitable[None]]


def free_plan(plan: CostPlan) -> CostPlan:
    return dataclasses.replace(plan, cost=Decimal("0"), cached=True)


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
            joined, duration = await asyncio.to_thread(_join, audio, self._pause_ms)
            result = SpeechResult(
                job_id=job_id, audio=joined, duration=duration, size=len(joined), cost=Decimal("0"),
                chunks=len(audio), text=self._text, exaggeration=params.exaggeration,
                temperature=params.temperature, cfg=params.cfg, voice_url=self._voice_url, cached=True,
            )
            sink.post(Completed(job_id, result))
            await sink.close()
            return result
        except asyncio.CancelledError:
            await sink.abort()
            raise


class CacheSeam:
    """What ``SpeechService`` asks of the cache: a replay on a full hit, a fill after a job."""

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

    async def replay(
        self, requester: Requester, text: str, plan: CostPlan, voice_url: str | None, clip: str | None,
        voice_name: str | None, params: TTSParams, on_event: EventCallback | None,
    ) -> Replay | None:
        """A ``Replay`` when every chunk is cached, else None (and nothing written).

        Free, but not a way around moderation: a paused server stays paused and a blocked
        member stays blocked (``GuildPaused`` / ``QuotaExceeded``). No cooldown or daily
        limit applies: nothing is spent."""
        audio = await self.cache.lookup(plan.chunks, clip, params)
        if audio is None:
            return None
        await self._quotas.assert_guild_open(requester.guild_id)
        guild_id = requester.guild_id
        if guild_id is not None and requester.user_id in await self._quotas.admin.blocked(guild_id):
            raise QuotaExceeded("You are blocked from using the bot on this server.", code="blocked")
        job_id = new_id()
        model = await self.cache.current_model()
        await self.cache.record_take(
            self.take(job_id, requester, text, plan, voice_url, clip, voice_name, params, model))
        log.info("request %s served from the audio cache: %d chunk(s), user %s", job_id, plan.requests,
                 requester.user_id)
        return Replay(job_id, text, free_plan(plan), audio, params, voice_url,
                      self._settings.chatterbox_chunk_pause_ms, on_event)

    def collector(self, take: Take, listener: EventCallback | None) -> ChunkCollector:
        """The listener wrapper of a paid job: keeps its chunks and, on ``Completed``, fills
        the cache before passing the event on (whoever sees "done" can replay it free)."""
        return ChunkCollector(listener, lambda collector: self.fill(take, collector))

    async def fill(self, take: Take, collector: ChunkCollector) -> None:
        """Record a completed job's take and cache its chunks; errors are logged, never raised."""
        cache = self.cache
        try:
            take = dataclasses.replace(take, model_id=collector.model_id)
            await cache.record_take(take)
            if len(collector.audio) == len(take.chunks):
                chunks = [(text, collector.audio[i]) for i, text in enumerate(take.chunks)]
                stored = await cache.put(chunks, take.clip_sha256, take.params, collector.model_id)
                log.debug("job %s: %d chunk(s) cached", take.id, stored)
        except Exception:
            log.exception("could not cache the audio of job %s (the next request is a miss)", take.id)


def _join(audio: list[bytes], pause_ms: int) -> tuple[bytes, float]:
    joined = join_wavs(audio, pause_ms=pause_ms) if len(audio) > 1 else audio[0]
    return joined, wav_info(joined).duration


class ChunkCollector:
    """A job's listener wrapper that keeps each chunk's audio and model id, and runs
    ``on_completed`` before the listener hears of the ``Completed`` event."""

    def __init__(self, listener: EventCallback | None,
                 on_completed: Callable[[ChunkCollector], Awaitable[None]] | None = None) -> None:
        self._listener = listener
        self._on_completed = on_completed
        self.audio: dict[int, bytes] = {}
        self.model_id: str | None = None

    async def __call__(self, event: SpeechEvent) -> None:
        if isinstance(event, ChunkReady):
            self.audio[event.index] = event.audio
            self.model_id = self.model_id or event.model_id
        elif isinstance(event, Completed) and self._on_completed is not None:
            await self._on_completed(self)
        if self._listener is not None:
            await self._listener(event)
