"""The shared harness for Discord integration tests: emulator + sandbox + SQLite + the real bot.

``open_harness(tmp_path, ...)`` (or the ``harness`` / ``make_harness`` fixtures in
``tests/discord/conftest.py``) brings up, on loopback:

- the gateway emulator (fast timing: jobs finish in well under a second of real time),
- the Discord sandbox with one guild, "Test Server": ``#general``, ``#mod-alerts``, a voice
  channel "Lounge", a "Mods" role with Manage Server, and the members alice, bob and mo (mod),
- a fresh SQLite database file in ``tmp_path`` (or, with ``db=`` a PostgreSQL ``DbTarget``, a
  schema of its own that every bot of the harness shares; ``BOTH_DATABASES`` runs a module on
  both),
- ``ChatterboxBot`` with settings pointing at both (``load_settings`` overrides), logged in
  and with its commands synced (``bot.tree.sync()`` against the sandbox).

Design decisions:

- Time. By default the sandbox runs on a ``JumpClock`` (real time that a test can jump
  forward) and the bot on ``BotClock``, a view of the same clock whose ``now()`` jumps along
  but whose ``monotonic()`` and ``sleep()`` stay real. So ``h.advance_discord_time(16 * 60)``
  makes interaction tokens expire (the sandbox's 15-minute rule reads its monotonic clock)
  and the bot *sees* that 16 minutes passed (``now()``), while the bot's pollers, rate guard
  and timeouts keep running on real seconds instead of waking up 16 minutes "late".
  ``advance_discord_time(..., bot_sees_it=False)`` moves Discord's clock alone, which tests
  the bot's fallback when it did not notice (Discord answers 50027). A test that passes its
  own ``clock`` shares it between sandbox and bot (and then owns its movement).
- The emulator keeps its own clock (``emulator_clock``; real by default). Pass a
  ``ManualClock`` to hold a job in PROCESSING until the test advances it (restart and
  15-minute tests).
- The quota cooldown defaults to 0 here (``QUOTA_COOLDOWN_SECONDS``) so a test that runs
  ``/speak`` twice is not refused for speed; a test of cooldowns overrides it.
- Knobs are keyword arguments; new ones must keep existing callers working.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import discord
import pytest
from sqlalchemy import select

from bot.app import COGS, ChatterboxBot
from bot.clock import Clock, SystemClock
from bot.config import Settings, load_settings
from bot.gateway.emulator import EmulatorConfig, GatewayEmulator
from bot.store.database import Database
from bot.store.tables import jobs, usage_ledger
from tests.sandbox import (
    DEFAULT_BOT,
    DEFAULT_UPLOAD_LIMIT,
    Channel,
    DiscordSandbox,
    Guild,
    InteractionHandle,
    Member,
    Message,
    Permission,
    Role,
)
from tests.store.dbkit import DbTarget

#: Emulator timing for Discord tests: jobs take ~0.05-0.2 s of real time.
FAST_EMULATOR = {"base_seconds": 0.05, "per_char_seconds": 0.001, "jitter": 0.0, "seed": 7}


class JumpClock:
    """Real time that a test can jump forward; ``sleep`` waits real seconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def jump(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self.offset += seconds


class BotClock:
    """The bot's view of a ``JumpClock``: jumped wall time, real monotonic time and sleeps."""

    def __init__(self, wall: JumpClock) -> None:
        self.wall = wall

    def now(self) -> datetime:
        return self.wall.now()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass
class Harness:
    """Everything a Discord test touches. Build it with ``open_harness``."""

    sandbox: DiscordSandbox
    emulator: GatewayEmulator
    bot: ChatterboxBot
    settings: Settings
    guild: Guild
    general: Channel
    alerts: Channel
    voice_channel: Channel
    mods: Role
    alice: Member
    bob: Member
    mo: Member
    tmp_path: Path
    #: The sandbox's clock (a ``JumpClock`` unless the test passed one).
    discord_clock: Clock
    #: The bot's clock (``BotClock`` over ``discord_clock`` unless the test passed one).
    bot_clock: Clock
    cogs: tuple[str, ...] = COGS
    voice_cls: type[discord.VoiceProtocol] | None = None
    sync_commands: bool = True
    #: The database every bot of this harness uses when not its SQLite file (PostgreSQL).
    database: Database | None = None
    #: Every bot this harness started, oldest first (``restart_bot`` appends).
    bots: list[ChatterboxBot] = field(default_factory=list)
    _bot_stack: AsyncExitStack | None = None

    # -- the bot ------------------------------------------------------------------------

    def new_bot(self) -> ChatterboxBot:
        # guild_ready_timeout: discord.py waits this long after the last GUILD_CREATE before
        # on_ready/wait_until_ready (2 s by default); the sandbox sends them all at once.
        return ChatterboxBot(
            self.settings,
            clock=self.bot_clock,
            cogs=self.cogs,
            voice_cls=self.voice_cls,
            guild_ready_timeout=0.05,
            connector=self.sandbox.voice_connector(),  # trusts the sandbox's voice servers (wss://)
            database=self.database,
        )

    async def start_bot(self, bot: ChatterboxBot | None = None) -> ChatterboxBot:
        """Log ``bot`` (default: a new one) into the sandbox and sync its commands."""
        if self._bot_stack is not None:
            raise RuntimeError("a bot is already running; use restart_bot()")
        bot = bot or self.new_bot()
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(self.sandbox.run_bot(bot))
            if self.sync_commands:
                await bot.tree.sync()
        except BaseException:
            await stack.aclose()
            raise
        self._bot_stack = stack
        self.bot = bot
        self.bots.append(bot)
        return bot

    async def stop_bot(self) -> None:
        """Close the running bot (services, gateway connection) and wait until Discord saw it go."""
        stack, self._bot_stack = self._bot_stack, None
        if stack is not None:
            await stack.aclose()
            assert_no_bot_tasks_left()

    async def restart_bot(self) -> ChatterboxBot:
        """Close the bot and start a new one on the same database, as a process restart would."""
        await self.stop_bot()
        return await self.start_bot()

    # -- time ---------------------------------------------------------------------------

    def advance_discord_time(self, seconds: float, *, bot_sees_it: bool = True) -> None:
        """Jump Discord's clock (token ages, snowflakes) forward; with ``bot_sees_it`` the
        bot's ``now()`` moves too (it shares the jump). Only with the default clocks."""
        if not isinstance(self.discord_clock, JumpClock):
            raise RuntimeError("advance_discord_time needs the harness's default clocks")
        if not bot_sees_it:
            if not isinstance(self.bot_clock, BotClock):
                raise RuntimeError("the bot shares the test's clock")
            # Detach the bot from the jump: it keeps the wall time it had before it.
            frozen = JumpClock()
            frozen.offset = self.discord_clock.offset
            self.bot_clock.wall = frozen
        self.discord_clock.jump(seconds)

    # -- driving and reading ------------------------------------------------------------

    async def speak(
        self, user: Member | None = None, channel: Channel | None = None, **options: Any
    ) -> InteractionHandle:
        """Run ``/speak`` as ``user`` (default alice) in ``channel`` (default #general)."""
        return await self.sandbox.slash("speak", user=user or self.alice, channel=channel or self.general,
                                        **options)

    def messages(self, channel: Channel | None = None, *, include_ephemeral: bool = False) -> list[Message]:
        return self.sandbox.messages(channel or self.general, include_ephemeral=include_ephemeral)

    def audio_messages(self, channel: Channel | None = None) -> list[Message]:
        """Messages in ``channel`` (default #general) that carry a file."""
        return [m for m in self.messages(channel) if m.attachments]

    async def ledger_rows(self) -> list[dict[str, Any]]:
        """Every quota reservation (``usage_ledger``), oldest first."""
        async with self.bot.core.db.read() as conn:
            rows = await conn.execute(select(usage_ledger).order_by(usage_ledger.c.created_at))
            return [dict(row._mapping) for row in rows]

    async def job_rows(self) -> list[dict[str, Any]]:
        """Every persisted speech job, oldest first."""
        async with self.bot.core.db.read() as conn:
            rows = await conn.execute(select(jobs).order_by(jobs.c.created_at))
            return [dict(row._mapping) for row in rows]

    async def set_alert_channel(self, channel: Channel | None) -> None:
        """Set (as mo) where moderators are alerted; ``None`` clears it."""
        await self.bot.core.quotas.admin.set_alert_channel(
            self.guild.id, None if channel is None else channel.id, actor_id=self.mo.id
        )


#: Name prefixes of the tasks the bot's own code starts (speech jobs, /speak cards, voice).
BOT_TASK_PREFIXES = ("speech-", "speak-", "voice-", "autoread-")


def assert_no_bot_tasks_left() -> None:
    """``bot.close()`` must stop everything it started: a task that outlives it may be inside a
    database call when the engine is gone, and then it hangs the process at exit."""
    left = [
        task.get_name() for task in asyncio.all_tasks()
        if not task.done() and task.get_name().startswith(BOT_TASK_PREFIXES)
    ]
    assert not left, f"tasks still running after the bot closed: {left}"


@asynccontextmanager
async def open_harness(
    tmp_path: Path,
    *,
    settings: Mapping[str, Any] | None = None,
    emulator: Mapping[str, Any] | EmulatorConfig | None = None,
    emulator_clock: Clock | None = None,
    cogs: tuple[str, ...] = COGS,
    voice_cls: type[discord.VoiceProtocol] | None = None,
    clock: Clock | None = None,
    bot_permissions: Any = DEFAULT_BOT,
    upload_limit: int = DEFAULT_UPLOAD_LIMIT,
    start: bool = True,
    sync_commands: bool = True,
    privileged_intents: int = 0,
    db: DbTarget | None = None,
) -> AsyncIterator[Harness]:
    """Bring everything up; tear it down in reverse order on exit.

    ``settings``: ``Settings`` field overrides (applied last). ``emulator``: an
    ``EmulatorConfig`` or overrides of ``FAST_EMULATOR`` fields. ``start=False`` leaves the
    bot unstarted (``await h.start_bot()``), e.g. to change the world first.
    ``privileged_intents``: the intent bits the application is allowed in the Developer Portal
    (e.g. Message Content, ``1 << 15``); others close the gateway with 4014, as on Discord.
    ``db``: where the bot keeps its data (``tests.store.dbkit.DbTarget``); None is a SQLite
    file in ``tmp_path``.
    """
    if isinstance(emulator, EmulatorConfig):
        emulator_config = emulator
    else:
        emulator_config = EmulatorConfig(
            **{**FAST_EMULATOR, **(emulator or {})}, clock=emulator_clock or SystemClock()
        )
    if clock is None:
        discord_clock: Clock = JumpClock()
        bot_clock: Clock = BotClock(discord_clock)  # type: ignore[arg-type]
    else:
        discord_clock = bot_clock = clock
    async with AsyncExitStack() as stack:
        database: Database | None = None
        if db is not None and db.kind == "postgres":
            database = await db.open()
            stack.push_async_callback(database.close)  # after the bot stopped (callbacks unwind)
        gateway = await stack.enter_async_context(GatewayEmulator(emulator_config))
        sandbox = await stack.enter_async_context(
            DiscordSandbox(clock=discord_clock, privileged_intents=privileged_intents)
        )
        guild = sandbox.add_guild("Test Server", bot_permissions=bot_permissions, upload_limit=upload_limit)
        mods = guild.add_role("Mods", permissions=Permission.MANAGE_GUILD)
        general = guild.add_text_channel("general")
        alerts = guild.add_text_channel("mod-alerts")
        voice_channel = guild.add_voice_channel("Lounge")
        alice = guild.add_member("alice")
        bob = guild.add_member("bob")
        mo = guild.add_member("mo", roles=[mods])
        overrides: dict[str, Any] = {
            "discord_token": sandbox.token,
            "chatterbox_gateway_url": gateway.base_url,
            "chatterbox_api_key": gateway.api_key,
            "chatterbox_allow_http": True,
            "database_url": db.url if db is not None else f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
            "cache_dir": str(tmp_path / "cache"),
            "quota_cooldown_seconds": 0,
            **(settings or {}),
        }
        harness = Harness(
            sandbox=sandbox,
            emulator=gateway,
            bot=None,  # type: ignore[arg-type]  # set by start_bot
            settings=load_settings(**overrides),
            guild=guild,
            general=general,
            alerts=alerts,
            voice_channel=voice_channel,
            mods=mods,
            alice=alice,
            bob=bob,
            mo=mo,
            tmp_path=tmp_path,
            discord_clock=discord_clock,
            bot_clock=bot_clock,
            cogs=cogs,
            voice_cls=voice_cls,
            sync_commands=sync_commands,
            database=database,
        )
        stack.push_async_callback(harness.stop_bot)
        if start:
            await harness.start_bot()
        yield harness


#: ``pytestmark = BOTH_DATABASES``: every test of a module runs on SQLite and on PostgreSQL
#: (the ``bot_db`` fixture of ``tests/discord/conftest.py``; PostgreSQL is skipped with the
#: reason when absent, and fails the run under ``CI=true``, as in ``tests/conftest.py``).
BOTH_DATABASES = pytest.mark.parametrize(
    "bot_db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)

__all__ = ["BOTH_DATABASES", "FAST_EMULATOR", "BotClock", "Harness", "JumpClock", "open_harness"]
