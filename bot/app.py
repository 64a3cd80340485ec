"""The Discord bot: ``ChatterboxBot`` builds the services, loads the cogs and closes it all.

Decisions a server owner may want to know:

* Intents are minimal: guilds and voice states. No message content, no members list: the
  member who runs a command arrives with the interaction, roles included. Only with
  ``AUTOREAD_ENABLED=true`` (hands-free reading) does the bot ask for guild messages and the
  privileged Message Content intent; without it everything else works the same.
* Mentions are off by default (``AllowedMentions.none()``), so spoken text that contains
  ``@everyone`` or a user mention can never ping anyone when it is echoed.
* Slash commands are synced on demand (``chatterbox-bot sync``), never at every start:
  syncing is rate limited by Discord and only needed after an install or upgrade. Instead, once
  connected the bot logs one ``ready: <name> in N servers, M commands registered`` line and,
  when Discord's list differs from the code's (one REST call, ``bot.command_sync``), a warning
  naming ``chatterbox-bot sync``. When no command is registered globally, the commands were
  perhaps synced to servers (``sync --guild``, as the README's set-up does): then the lists of
  the first ``GUILD_COMMAND_CHECKS`` servers the bot is in are compared instead (one REST call
  each), and a warning comes only if none of them has the commands or one has outdated ones.
  ``sync`` builds the bot with ``commands_only=True``: the command tree without the services,
  so it needs the Discord token and nothing else (no API key, no database).
* An option value discord.py cannot convert (a stale client sending a voice channel where a
  text channel is wanted, a deleted role) is answered with the option's name and what it
  accepts, not with an apology.
* Any unexpected error in a command becomes a short ephemeral apology carrying an error id;
  the same id is logged with the traceback, so a moderator's report can be matched to the log.
* Interaction tokens stay out of the log even at ``LOG_LEVEL=DEBUG``: discord.py logs REST
  URLs (``/interactions/{id}/{token}/callback``, ``/webhooks/{app}/{token}``) and gateway
  payloads (``'token': …``) at DEBUG, so its loggers get ``RedactInteractionTokens``.
* Stopping: ``run_bot`` handles SIGTERM and SIGINT itself (so it stops as PID 1 too), and
  ``close`` stops the speech service first — no new jobs, deliveries in progress get
  ``SHUTDOWN_GRACE_SECONDS`` while Discord is still connected — then Discord, then the core.
* On SQLite ``run_bot`` takes the database's instance lock before logging in: one bot per file.
* With ``DISCORD_SHARD_COUNT`` the bot is a ``ShardedChatterboxBot`` (``AutoShardedBot``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import uuid
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.audio import find_ffmpeg
from bot.clock import Clock, SystemClock
from bot.command_sync import compare, drift_warning, ready_line
from bot.config import Settings
from bot.playback.clip import VoiceClip
from bot.playback.queue import Placement

if TYPE_CHECKING:
    # Imported in setup_hook: the store pulls in Alembic, which logs at import time, and
    # `chatterbox-bot run` without a token must print exactly one line.
    from bot.services import Services
    from bot.store.database import Database

log = logging.getLogger(__name__)

#: At most this many servers' command lists are read at start when none is registered globally.
GUILD_COMMAND_CHECKS = 10

COGS = ("cogs.speak", "cogs.quotas", "cogs.voice", "cogs.voices", "cogs.help", "cogs.autoread")

#: discord.py's loggers whose DEBUG lines carry interaction or webhook tokens.
TOKEN_LOGGERS = (
    "discord.http", "discord.gateway", "discord.webhook.async_", "discord.client", "discord.state",
)
_TOKEN_PATTERNS = (
    re.compile(r"(/(?:interactions|webhooks)/\d+/)[^/\s?'\"]+"),
    re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]+"""),
)


class RedactInteractionTokens(logging.Filter):
    """Replaces interaction and webhook tokens in a log record's message with ``<redacted>``.

    Installed on discord.py's own loggers: only records that pass a logger's level reach its
    filters, so at the default INFO level this costs nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for pattern in _TOKEN_PATTERNS:
            redacted = pattern.sub(r"\1<redacted>", redacted)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_interaction_tokens() -> None:
    """Install ``RedactInteractionTokens`` on ``TOKEN_LOGGERS`` (once per logger)."""
    for name in TOKEN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactInteractionTokens) for f in logger.filters):
            logger.addFilter(RedactInteractionTokens())


class VoiceOutput(Protocol):
    """What the /speak cog needs of voice chat: queue a clip for a member's channel.

    The voice cog registers itself as ``ChatterboxBot.voice_output`` while it is loaded; None
    means voice output is not available (the clip is posted as a file instead).
    """

    async def enqueue(self, member: discord.Member, clip: VoiceClip) -> Placement: ...


class ChatterboxBot(commands.Bot):
    """The bot. Tests build it with a sandboxed HTTP session, an injected clock and, for voice,
    the ``VoiceProtocol`` class to connect with (``voice_cls``; discord.py's ``VoiceClient``
    when None). ``database``: an open ``Database`` to use instead of opening ``DATABASE_URL``
    (tests hand it a PostgreSQL schema of their own); it is left open when the bot closes."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        session: aiohttp.ClientSession | None = None,
        cogs: tuple[str, ...] = COGS,
        commands_only: bool = False,
        instance_lock: bool = True,
        voice_cls: type[discord.VoiceProtocol] | None = None,
        serve_http: bool = False,
        database: Database | None = None,
        **options: Any,
    ) -> None:
        redact_interaction_tokens()
        intents = discord.Intents.none()
        intents.guilds = True
        intents.voice_states = True
        if settings.autoread_enabled:
            intents.guild_messages = True
            intents.message_content = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            **options,
        )
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self._injected_session = session
        self._injected_database = database
        self._cog_names = cogs
        self.commands_only = commands_only
        self._instance_lock = instance_lock
        self.services: Services | None = None
        self.serve_http = serve_http
        self.ffmpeg: str | None = None
        #: The start-up report (ready line, command check): started by ``setup_hook``, it
        #: waits for the first READY and runs once.
        self.ready_report: asyncio.Task[None] | None = None
        self.voice_cls = voice_cls
        self.voice_output: VoiceOutput | None = None
        #: The out-of-credit pause (its epoch) whose alert this process posted, and the servers
        #: where the post went through (``cogs.speak.session.out_of_credit``).
        self.credit_alert: tuple[int, frozenset[int]] | None = None
        self.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]

    async def setup_hook(self) -> None:
        if not self.commands_only:
            await self._open_services()
        for name in self._cog_names:
            await self.load_extension(name)
        if not self.commands_only:
            self.ready_report = asyncio.create_task(self.report_ready(), name="bot-ready-report")

    async def _open_services(self) -> None:
        from bot.services import Services

        self.services = await Services.open(self.settings, clock=self.clock, session=self._injected_session,
                                            database=self._injected_database, serve_http=self.serve_http,
                                            discord=self.discord_connected, instance_lock=self._instance_lock)
        self.ffmpeg = await asyncio.to_thread(find_ffmpeg, self.settings.ffmpeg_path)
        if self.ffmpeg is None:
            log.warning("FFmpeg not found: large audio cannot be compressed and voice chat is off")

    async def report_ready(self) -> None:
        """Once connected: the ready line, and a warning when Discord's commands are not the code's."""
        await self.wait_until_ready()
        try:
            registered = await self._registered()
        except discord.HTTPException as exc:
            log.warning("could not read the registered slash commands from Discord: %s", exc)
            registered = None
        code = [c.to_dict(self.tree) for c in self.tree.get_commands()]
        per_guild: dict[int, list[dict[str, Any]]] = {}
        if registered == [] and code:  # nothing global: perhaps synced per server (sync --guild)
            per_guild = await self._registered_in_guilds()
        name = self.user.name if self.user is not None else "the bot"
        count = None if registered is None else max([len(registered)] + [len(c) for c in per_guild.values()])
        log.info("%s", ready_line(name, len(self.guilds), count))
        if registered is None:
            return
        if not per_guild:
            drift = compare(code, registered)
            if drift:
                log.warning("%s", drift_warning(drift))
            return
        for guild_id, commands_here in per_guild.items():
            drift = compare(code, commands_here)
            if drift:
                log.warning(
                    "the slash commands registered in server %s differ from this version's (%s): run "
                    "`chatterbox-bot sync --guild %s` (or `make sync GUILD=%s`) to register them",
                    guild_id, drift.describe(), guild_id, guild_id,
                )

    async def _registered(self, guild: discord.abc.Snowflake | None = None) -> list[dict[str, Any]]:
        fetched = await self.tree.fetch_commands(guild=guild)
        return [command.to_dict() | _permissions(command) for command in fetched]

    async def _registered_in_guilds(self) -> dict[int, list[dict[str, Any]]]:
        """The servers (of the first ``GUILD_COMMAND_CHECKS``) that have commands, with them."""
        found: dict[int, list[dict[str, Any]]] = {}
        for guild in self.guilds[:GUILD_COMMAND_CHECKS]:
            try:
                registered = await self._registered(guild)
            except discord.HTTPException as exc:  # e.g. invited without applications.commands
                log.info("could not read the slash commands of server %s: %s", guild.id, exc)
                continue
            if registered:
                found[guild.id] = registered
        return found

    def discord_connected(self) -> bool:
        """For ``/healthz``: logged in and connected to Discord's gateway."""
        return self.is_ready() and not self.is_closed()

    @property
    def core(self) -> Services:
        """The services; present from ``setup_hook`` on."""
        if self.services is None:
            raise RuntimeError("the bot has not been set up yet")
        return self.services

    async def close(self) -> None:
        """The clean stop: no new jobs, deliveries in progress finish (``SHUTDOWN_GRACE_SECONDS``)
        while Discord is still connected, then Discord closes, then the core (leases released)."""
        if self.ready_report is not None and not self.ready_report.done():
            self.ready_report.cancel()
            await asyncio.gather(self.ready_report, return_exceptions=True)
        if self.services is not None:
            try:
                await self.services.speech.stop()
            except Exception:
                log.exception("stopping the speech service failed")
        try:
            await super().close()
        finally:
            if self.services is not None:
                await self.services.close()
                self.services = None

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        if isinstance(error, app_commands.CheckFailure):
            message = str(error) or "You cannot use this command here."
        elif isinstance(error, app_commands.TransformerError):
            message = invalid_option_message(interaction, error)
        elif isinstance(error, app_commands.CommandOnCooldown):
            message = f"Slow down: try again in {error.retry_after:.0f} s."
        else:
            error_id = uuid.uuid4().hex[:8]
            original = getattr(error, "original", error)
            log.error(
                "error id %s in /%s",
                error_id,
                interaction.command.qualified_name if interaction.command else "?",
                exc_info=(type(original), original, original.__traceback__),
                extra={"error_id": error_id},  # a field of its own in LOG_FORMAT=json
            )
            message = f"Sorry, something went wrong on our side (error id `{error_id}`)."
        await send_ephemeral(interaction, message)


def _permissions(command: app_commands.AppCommand) -> dict[str, Any]:
    """``AppCommand.to_dict`` leaves the default member permissions out; the tree's has them."""
    perms = command.default_member_permissions
    return {"default_member_permissions": None if perms is None else str(perms.value)}


_CHANNEL_KINDS = {
    discord.ChannelType.text: "text channel",
    discord.ChannelType.voice: "voice channel",
    discord.ChannelType.category: "category",
    discord.ChannelType.news: "announcement channel",
    discord.ChannelType.stage_voice: "stage channel",
    discord.ChannelType.forum: "forum",
    discord.ChannelType.public_thread: "thread",
    discord.ChannelType.private_thread: "private thread",
}
_ACCEPTS = {
    discord.AppCommandOptionType.role: "a role of this server",
    discord.AppCommandOptionType.user: "a member of this server",
    discord.AppCommandOptionType.mentionable: "a member or role of this server",
    discord.AppCommandOptionType.attachment: "a file you attach",
    discord.AppCommandOptionType.integer: "a whole number",
    discord.AppCommandOptionType.number: "a number",
    discord.AppCommandOptionType.boolean: "true or false",
    discord.AppCommandOptionType.string: "text",
}


def _accepts(parameter: app_commands.Parameter) -> str:
    """What an option takes, in a member's words ("a text channel", "1 to 100")."""
    if parameter.choices:
        return "one of " + ", ".join(f"`{c.name}`" for c in parameter.choices[:10])
    if parameter.type is discord.AppCommandOptionType.channel:
        kinds = [_CHANNEL_KINDS.get(t, "channel") for t in parameter.channel_types] or ["channel"]
        return "a " + " or ".join(dict.fromkeys(kinds)) + " of this server"
    if parameter.min_value is not None and parameter.max_value is not None:
        return f"{_ACCEPTS[parameter.type]} from {parameter.min_value:g} to {parameter.max_value:g}"
    return _ACCEPTS.get(parameter.type, "another value")


def invalid_option_message(interaction: discord.Interaction, error: app_commands.TransformerError) -> str:
    """"`Lounge` is not a valid value for `channel`: pick a text channel of this server."."""
    shown = discord.utils.escape_markdown(str(error.value))[:100]
    command = interaction.command
    parameters = command.parameters if isinstance(command, app_commands.Command) else []
    candidates = [p for p in parameters if p.type is error.type]
    if len(candidates) > 1:  # several options of that type: the one whose raw value was sent
        raw = str(getattr(error.value, "id", error.value))
        named = {o.get("name") for o in _leaf_options(interaction.data or {}) if str(o.get("value")) == raw}
        candidates = [p for p in candidates if p.display_name in named] or candidates
    if len(candidates) != 1:
        return f"`{shown}` is not a valid value for one of this command's options; please pick again."
    parameter = candidates[0]
    return f"`{shown}` is not a valid value for `{parameter.display_name}`: pick {_accepts(parameter)}."


def _leaf_options(data: Any) -> list[dict[str, Any]]:
    """The options that carry values, through subcommand and group nesting."""
    found: list[dict[str, Any]] = []
    for option in data.get("options", []) if isinstance(data, dict) else []:
        if "value" in option:
            found.append(option)
        else:
            found.extend(_leaf_options(option))
    return found


class ShardedChatterboxBot(ChatterboxBot, commands.AutoShardedBot):
    """``ChatterboxBot`` over several shards: the AutoShardedClient's connection handling,
    everything else unchanged. Built by ``make_bot`` when ``DISCORD_SHARD_COUNT`` is set;
    ``DISCORD_SHARD_IDS`` picks this process's shards, and its reconciler then works only on
    the jobs of those shards' guilds (``SpeechService.shard_condition``)."""


def make_bot(settings: Settings, **options: Any) -> ChatterboxBot:
    """The bot for ``settings``: sharded when ``DISCORD_SHARD_COUNT`` is set."""
    count = settings.discord_shard_count
    if count is None:
        return ChatterboxBot(settings, **options)
    ids = settings.shard_ids()
    return ShardedChatterboxBot(settings, shard_count=count, shard_ids=list(ids) if ids else None, **options)


async def send_ephemeral(interaction: discord.Interaction, message: str, **kwargs: Any) -> None:
    """Answer ephemerally whether or not the interaction was already acknowledged; ``kwargs``
    (``file=``, ``view=``…) go to discord.py's send. Mentions are off by the bot's default."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True, **kwargs)
        else:
            await interaction.response.send_message(message, ephemeral=True, **kwargs)
    except discord.HTTPException:
        log.warning("could not answer the member privately (interaction gone)")


async def run_bot(settings: Settings) -> None:
    """``chatterbox-bot run``: connect and serve until SIGTERM or SIGINT, then stop cleanly
    (``ChatterboxBot.close``: no new jobs, deliveries finish, leases released)."""
    from bot.store.engine import create_engine
    from bot.store.instance_lock import acquire_for_url

    # Before logging in: a malformed DATABASE_URL, or a second bot on one SQLite file, is
    # reported at once (an unreachable server shows when the services open, after login).
    await create_engine(settings.database_url).dispose()
    lock = acquire_for_url(settings.database_url)
    bot = make_bot(settings, instance_lock=False, serve_http=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with bot:
            serving = asyncio.create_task(bot.start(settings.require_discord_token().get_secret_value()),
                                          name="discord")
            stopping = asyncio.create_task(stop.wait(), name="signals")
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if serving.done():
                serving.result()  # a login failure, a bad database: raised for the CLI
                return
            log.info("stopping on a signal")
            await bot.close()
            await asyncio.gather(serving, return_exceptions=True)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if lock is not None:
            lock.release()


async def sync_commands(settings: Settings, *, guild_id: int | None = None) -> list[str]:
    """``chatterbox-bot sync``: register the slash commands, globally or for one guild.

    Logs in over REST only (no gateway connection) and loads the cogs so the tree is complete,
    but opens none of the services: only ``DISCORD_TOKEN`` is needed.
    """
    bot = ChatterboxBot(settings, commands_only=True)
    async with bot:
        await bot.login(settings.require_discord_token().get_secret_value())
        guild = discord.Object(id=guild_id) if guild_id else None
        if guild is not None:
            bot.tree.copy_global_to(guild=guild)
        synced = await bot.tree.sync(guild=guild)
    names = sorted(command.name for command in synced)
    where = f"server {guild_id}" if guild_id else "all servers (may take up to an hour to appear)"
    print(f"synced {len(names)} commands to {where}: {', '.join('/' + n for n in names)}")
    return names
