"""The Discord bot: ``ChatterboxBot`` builds the services, loads the cogs and closes it all.

Decisions a server owner may want to know:

* Intents are minimal: guilds and voice states. No message content, no members list: the
  member who runs a command arrives with the interaction, roles included. Only with
  ``AUTOREAD_ENABLED=true`` (hands-free reading) does the bot ask for guild messages and the
  privileged Message Content intent; without it everything else works the same.
* Mentions are off by default (``AllowedMentions.none()``), so spoken text that contains
  ``@everyone`` or a user mention can never ping anyone when it is echoed.
* Slash commands are synced on demand (``chatterbox-bot sync``), never at every start:
  syncing is rate limited by Discord and only needed after an install or upgrade.
* Any unexpected error in a command becomes a short ephemeral apology carrying an error id;
  the same id is logged with the traceback, so a moderator's report can be matched to the log.
* Interaction tokens stay out of the log even at ``LOG_LEVEL=DEBUG``: discord.py logs REST
  URLs (``/interactions/{id}/{token}/callback``, ``/webhooks/{app}/{token}``) and gateway
  payloads (``'token': …``) at DEBUG, so its loggers get ``RedactInteractionTokens``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.audio import find_ffmpeg
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.playback.clip import VoiceClip
from bot.playback.queue import Placement

if TYPE_CHECKING:
    # Imported in setup_hook: the store pulls in Alembic, which logs at import time, and
    # `chatterbox-bot run` without a token must print exactly one line.
    from bot.services import Services

log = logging.getLogger(__name__)

COGS = ("cogs.speak", "cogs.quotas", "cogs.voice", "cogs.autoread")

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
    when None)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        session: aiohttp.ClientSession | None = None,
        cogs: tuple[str, ...] = COGS,
        voice_cls: type[discord.VoiceProtocol] | None = None,
        serve_http: bool = False,
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
        self._cog_names = cogs
        self.services: Services | None = None
        self.serve_http = serve_http
        self.ffmpeg: str | None = None
        self.voice_cls = voice_cls
        self.voice_output: VoiceOutput | None = None
        self.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]

    async def setup_hook(self) -> None:
        from bot.services import Services

        self.services = await Services.open(self.settings, clock=self.clock, session=self._injected_session,
                                            serve_http=self.serve_http, discord=self.discord_connected)
        self.ffmpeg = await asyncio.to_thread(find_ffmpeg, self.settings.ffmpeg_path)
        if self.ffmpeg is None:
            log.warning("FFmpeg not found: large audio cannot be compressed and voice chat is off")
        for name in self._cog_names:
            await self.load_extension(name)

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
            message = f"{str(error.value)[:100]!r} is not a valid value for that option."
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
            )
            message = f"Sorry, something went wrong on our side (error id `{error_id}`)."
        await send_ephemeral(interaction, message)


async def send_ephemeral(interaction: discord.Interaction, message: str) -> None:
    """Answer ephemerally whether or not the interaction was already acknowledged."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell the member about an error (interaction gone)")


async def run_bot(settings: Settings) -> None:
    """``chatterbox-bot run``: connect and serve until interrupted (with the HTTP server)."""
    bot = ChatterboxBot(settings, serve_http=True)
    async with bot:
        await bot.start(settings.require_discord_token().get_secret_value())


async def sync_commands(settings: Settings, *, guild_id: int | None = None) -> list[str]:
    """``chatterbox-bot sync``: register the slash commands, globally or for one guild.

    Logs in over REST only (no gateway connection) and loads the cogs so the tree is complete.
    """
    bot = ChatterboxBot(settings)
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
