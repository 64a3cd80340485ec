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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

import aiohttp

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.gateway.client import ChatterboxClient
from bot.gateway.ratelimit import RateGuard
from bot.quotas.service import QuotaService
from bot.quotas.wallet import WalletGuard
from bot.speech.service import SpeechService
from bot.store.database import Database, open_database
from bot.store.durations import DurationsStore

log = logging.getLogger(__name__)

DURATIONS_SAVE_SECONDS = 60.0


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
        owns_session: bool,
        owns_db: bool,
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
        self._owns_session = owns_session
        self._owns_db = owns_db
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
    ) -> Services:
        """Build everything; raises ``ConfigError`` (missing API key, plain http without
        ``CHATTERBOX_ALLOW_HTTP``) before opening anything. ``session`` and ``database``, when
        given, are used as they are and left open by ``close``."""
        settings.require_api_key()
        clock = clock or SystemClock()
        owns_session = session is None
        http = session or aiohttp.ClientSession()
        db: Database | None = database
        try:
            if db is None:
                db = await open_database(settings.database_url)
            quotas = QuotaService(db, settings, clock)
            wallet = WalletGuard.from_settings(db, settings, clock)
            limiter = RateGuard(settings.chatterbox_rate_per_second, settings.chatterbox_rate_burst, clock)
            status_rate = settings.chatterbox_status_rate_per_second
            status_limiter = RateGuard(status_rate, max(1, round(status_rate)), clock)
            durations = DurationsStore(db, clock)
            client = ChatterboxClient.from_settings(http, settings, clock, limiter=limiter,
                                                    status_limiter=status_limiter)
            await durations.load(client.durations)
            speech = SpeechService(client=client, db=db, quotas=quotas, wallet=wallet, limiter=limiter,
                                   settings=settings, clock=clock)
        except BaseException:
            if db is not None and database is None:
                await db.close()
            if owns_session:
                await http.close()
            raise
        services = cls(settings=settings, clock=clock, session=http, db=db, quotas=quotas, wallet=wallet,
                       limiter=limiter, status_limiter=status_limiter, durations=durations, client=client,
                       speech=speech, owns_session=owns_session, owns_db=database is None)
        services._start_background()
        return services

    async def close(self) -> None:
        """Close in reverse order of building: speech tasks, durations, database, HTTP session."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.speech.close()
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

    async def __aenter__(self) -> Services:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
