"""``Services``: every core service of one process, built once and closed once.

Both front ends (the Discord bot and the CLI) assemble the core here, so they share one shape:
ONE ``aiohttp.ClientSession`` (owned unless injected), ONE database engine (migrated at start;
owned unless injected), the quota service, the wallet guard, ONE ``RateGuard`` for every
request to the gateway, the client and the speech service. Nothing here is global: a test can
open several ``Services`` side by side (for instance two "processes" on one database).

The client gets the rate guard through ``PrepaidLimiter`` so the speech pipeline can wait for
a slot itself (to report the member's place in line) without spending a second token.
"""

from __future__ import annotations

from types import TracebackType

import aiohttp

from bot.autoread.store import AutoreadStore
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.gateway.client import ChatterboxClient
from bot.gateway.ratelimit import RateGuard
from bot.quotas.service import QuotaService
from bot.quotas.wallet import WalletGuard
from bot.speech.service import SpeechService
from bot.speech.slots import PrepaidLimiter
from bot.store.database import Database, open_database


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
        self.client = client
        self.speech = speech
        #: Hands-free reading's settings and opt-ins (``bot.autoread``).
        self.autoread = AutoreadStore(db, clock)
        self._owns_session = owns_session
        self._owns_db = owns_db
        self._closed = False

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
            client = ChatterboxClient.from_settings(http, settings, clock, limiter=PrepaidLimiter(limiter))
            speech = SpeechService(client=client, db=db, quotas=quotas, wallet=wallet, limiter=limiter,
                                   settings=settings, clock=clock)
        except BaseException:
            if db is not None and database is None:
                await db.close()
            if owns_session:
                await http.close()
            raise
        return cls(settings=settings, clock=clock, session=http, db=db, quotas=quotas, wallet=wallet,
                   limiter=limiter, client=client, speech=speech, owns_session=owns_session,
                   owns_db=database is None)

    async def close(self) -> None:
        """Close in reverse order of building: speech tasks, database, HTTP session."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.speech.close()
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
