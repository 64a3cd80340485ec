"""``Services``: every core service of one process, built once and closed once.

Both front ends (the Discord bot and the CLI) assemble the core here, so they share one shape:
ONE ``aiohttp.ClientSession`` (owned unless injected), ONE database engine (migrated at start;
owned unless injected), the quota service, the wallet guard, ONE ``RateGuard`` for every
request to the gateway, the client and the speech service. Nothing here is global: a test can
open several ``Services`` side by side (for instance two "processes" on one database).

Two rate budgets: the shared ``RateGuard`` for submissions (the speech pipeline waits for it
itself, to show the member their place in line, and submits with ``slot_held=True``), and a
second guard for status reads (``CHATTERBOX_STATUS_RATE_PER_SECOND``), so a poll never waits
behind submissions and a 429 on reads slows reads only.

The learned job durations (the poll plan's input) are loaded from the database at start and
saved every ``DURATIONS_SAVE_SECONDS`` and at close.

Saved voices: ``VoiceAudio`` (``bot.voices.urls``) is the speech pipeline's
``VoiceUrlResolver``: a job made with a saved voice stores ``voice:<id>`` and gets the clip's
URL from it right before each POST (``bot.speech.voice_ref``).

Push and the HTTP side: with ``PUBLIC_BASE_URL`` a ``PushHub`` gives every submission a
webhook; with ``serve_http`` (``chatterbox-bot run`` always, ``speak`` only with push) the
``WebServer`` (callbacks, ``/healthz``, ``/metrics``) listens on ``HTTP_HOST:HTTP_PORT``
unless ``HTTP_PORT=0``. One ``Metrics`` registry per ``Services``. Closing stops the server
first, so no callback arrives while the rest shuts down.

``instance_lock=True`` (the Discord bot) takes SQLite's one-process lock
(``bot.store.instance_lock``) before anything else; on PostgreSQL there is none to take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from types import TracebackType
from typing import Any

import aiohttp

from bot.autoread.store import AutoreadStore
from bot.cache import AudioCache
from bot.clock import Clock, SystemClock
from bot.config import ConfigError, Settings
from bot.gateway.client import ChatterboxClient
from bot.gateway.ratelimit import RateGuard
from bot.metrics import Metrics
from bot.push import PushHub
from bot.quotas.errors import QuotaExceeded
from bot.quotas.service import QuotaService
from bot.quotas.wallet import WalletGuard
from bot.speech.cached import CacheSeam
from bot.speech.holds import SharedRateGuard
from bot.speech.service import SpeechService
from bot.store.database import Database, open_database
from bot.store.durations import DurationsStore
from bot.store.instance_lock import InstanceLock, acquire_for_url
from bot.voices import ClipSigner, VoiceAudio, VoiceLibrary
from bot.voices.web import clip_app
from bot.web import DiscordStatus, WebServer

log = logging.getLogger(__name__)

DURATIONS_SAVE_SECONDS = 60.0


class MeteredQuotas(QuotaService):
    """``QuotaService`` that counts its refusals for ``/metrics`` (by limit code)."""

    def __init__(self, *args: Any, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._metrics = metrics

    async def reserve(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().reserve(*args, **kwargs)
        except QuotaExceeded as exc:
            self._metrics.quota_refusal(exc.code)
            raise


class Services:
    """The assembled core. Build with ``await Services.open(settings)``; close with ``close()``
    or use ``async with``."""

    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        session: aiohttp.ClientSession,
        db: Database,
        quotas: QuotaService,
        wallet: WalletGuard,
        limiter: RateGuard,
        status_limiter: RateGuard,
        durations: DurationsStore,
        client: ChatterboxClient,
        speech: SpeechService,
        cache: AudioCache,
        voices: VoiceLibrary | None = None,
        clip_signer: ClipSigner | None = None,
        voice_audio: VoiceAudio | None = None,
        owns_session: bool,
        owns_db: bool,
        lock: InstanceLock | None = None,
        metrics: Metrics | None = None,
        push: PushHub | None = None,
        web: WebServer | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.session = session
        self.db = db
        self.quotas = quotas
        self.wallet = wallet
        self.limiter = limiter
        self.status_limiter = status_limiter
        self.durations = durations
        self.client = client
        self.speech = speech
        self.metrics = metrics or Metrics()
        self.push = push
        self.web = web
        self.cache = cache
        #: The saved-voice library, its clip-URL signer and the audio_url maker (bot.voices).
        self.voices = voices or VoiceLibrary(db, settings, clock)
        ttl = settings.voice_clip_url_ttl_seconds
        self.clip_signer = clip_signer or ClipSigner(db, clock, ttl_seconds=ttl)
        self.voice_audio = voice_audio or VoiceAudio(self.voices, self.clip_signer,
                                                     public_base_url=settings.public_base_url)
        #: Hands-free reading's settings and opt-ins (``bot.autoread``).
        self.autoread = AutoreadStore(db, clock)
        self._owns_session = owns_session
        self._owns_db = owns_db
        self._lock = lock
        self._closed = False
        self._saver: asyncio.Task[None] | None = None

    def _start_background(self) -> None:
        self._saver = asyncio.create_task(self._save_durations_now_and_then(), name="durations-saver")

    async def _save_durations_now_and_then(self) -> None:
        while True:
            await self.clock.sleep(DURATIONS_SAVE_SECONDS)
            try:
                await self.durations.save(self.client.durations)
            except Exception:
                log.warning("could not save the observed job durations", exc_info=True)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        session: aiohttp.ClientSession | None = None,
        database: Database | None = None,
        instance_lock: bool = False,
        serve_http: bool = False,
        discord: DiscordStatus | None = None,
        http_port: int | None = None,
    ) -> Services:
        """Build everything; raises ``ConfigError`` (missing API key, plain http without
        ``CHATTERBOX_ALLOW_HTTP``) before opening anything. ``session`` and ``database``, when
        given, are used as they are and left open by ``close``. ``serve_http`` starts the HTTP
        server (unless ``HTTP_PORT=0``); ``http_port`` overrides the port (tests: 0 = any free
        port); ``discord`` reports Discord's state to ``/healthz``."""
        settings.require_api_key()
        settings.shard_ids()  # a bad DISCORD_SHARD_IDS is a ConfigError before anything opens
        public_url = settings.require_public_base_url()
        lock = acquire_for_url(settings.database_url) if instance_lock else None
        clock = clock or SystemClock()
        owns_session = session is None
        http = session or aiohttp.ClientSession()
        db: Database | None = database
        push: PushHub | None = None
        web: WebServer | None = None
        try:
            if db is None:
                db = await open_database(settings.database_url,
                                         retry_seconds=settings.database_retry_seconds)
            metrics = Metrics()
            quotas = MeteredQuotas(db, settings, clock, metrics=metrics)
            wallet = WalletGuard.from_settings(db, settings, clock)
            limiter = SharedRateGuard(settings.chatterbox_rate_per_second, settings.chatterbox_rate_burst,
                                      clock, db=db)
            status_rate = settings.chatterbox_status_rate_per_second
            status_limiter = RateGuard(status_rate, max(1, round(status_rate)), clock)
            durations = DurationsStore(db, clock)
            if public_url is not None:
                push = PushHub(db, clock, public_base_url=public_url, mode=settings.chatterbox_webhook_mode,
                               sweep_seconds=settings.chatterbox_push_sweep_seconds, metrics=metrics)
            client = ChatterboxClient.from_settings(http, settings, clock, limiter=limiter,
                                                    status_limiter=status_limiter, push=push, metrics=metrics)
            client.poll_policy = replace(client.poll_policy,
                                         push_fallback=settings.chatterbox_push_fallback_seconds)
            await durations.load(client.durations)
            cache = AudioCache.from_settings(db, settings, clock)
            voices = VoiceLibrary(db, settings, clock)
            clip_signer = ClipSigner(db, clock, ttl_seconds=settings.voice_clip_url_ttl_seconds)
            voice_audio = VoiceAudio(voices, clip_signer, public_base_url=settings.public_base_url)
            speech = SpeechService(client=client, db=db, quotas=quotas, wallet=wallet, limiter=limiter,
                                   settings=settings, clock=clock,
                                   cache=CacheSeam(cache, quotas, settings, clock), voice_urls=voice_audio)
            port = settings.http_port if http_port is None else http_port
            if serve_http and (http_port is not None or settings.http_port != 0):
                server = WebServer(host=settings.http_host, port=port, db=db, wallet=wallet, metrics=metrics,
                                   callbacks=push, discord=discord, clips=clip_app(voices, clip_signer))
                try:
                    await server.start()
                except OSError as exc:
                    raise ConfigError(f"cannot listen on HTTP_HOST:HTTP_PORT ({settings.http_host}:{port}): "
                                      f"{exc.strerror or type(exc).__name__}") from None
                web = server
            elif push is not None:
                log.warning("PUBLIC_BASE_URL is set but this process serves no HTTP: its callbacks "
                            "must reach another process of this bot")
        except BaseException:
            if web is not None:
                await web.close()
            if push is not None:
                await push.close()
            if db is not None and database is None:
                await db.close()
            if owns_session:
                await http.close()
            if lock is not None:
                lock.release()
            raise
        services = cls(settings=settings, clock=clock, session=http, db=db, quotas=quotas, wallet=wallet,
                       limiter=limiter, status_limiter=status_limiter, durations=durations, client=client,
                       speech=speech, owns_session=owns_session, owns_db=database is None,
                       metrics=metrics, push=push, web=web, cache=cache, voices=voices,
                       clip_signer=clip_signer, voice_audio=voice_audio, lock=lock)
        services._start_background()
        return services

    async def close(self) -> None:
        """Close in reverse order of building: speech tasks, durations, database, HTTP session."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.web is not None:
                await self.web.close()
            await self.speech.close()
            if isinstance(self.limiter, SharedRateGuard):
                await self.limiter.close()
            if self.push is not None:
                await self.push.close()
            if self._saver is not None:
                self._saver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._saver
            try:
                await self.durations.save(self.client.durations)
            except Exception:
                log.warning("could not save the observed job durations", exc_info=True)
        finally:
            try:
                if self._owns_db:
                    await self.db.close()
            finally:
                if self._owns_session:
                    await self.session.close()
                if self._lock is not None:
                    self._lock.release()

    async def __aenter__(self) -> Services:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
