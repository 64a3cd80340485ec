"""``/autoread``: hands-free reading of one channel for members who opt in.

Commands (guild only; answers are ephemeral, mentions off):

* ``/autoread setup text_channel:<#channel> [voice_channel] [announce] [join_on_first_speaker]``
  (moderators: Manage Server or Administrator). ``text_channel`` may be a text channel or a
  voice channel's own text chat. ``voice_channel`` limits reading to members in that voice
  channel; ``announce`` prefixes each message with "<name> said"; ``join_on_first_speaker``
  (default on) lets the bot join the voice channel of the first opted-in member who writes.
* ``/autoread off``, ``/autoread show`` (moderators).
* ``/autoread me on|off|status`` (every member): nobody is read without opting in; ``status``
  also says which voice and tuning their messages are read in (``cogs.autoread.voices``: their
  ``/voices default``, as /speak uses it) and why the last message was not read, if it was
  refused. ``on`` says what the ⚠️ mark means and where its reason is.

Events: ``on_message`` (new messages), ``on_raw_message_edit`` / ``on_raw_message_delete``
(raw, so edits and deletions of messages not in discord.py's cache still count). Reading needs
the Message Content intent, which the bot requests only with ``AUTOREAD_ENABLED=true``
(``bot.app``); without it the commands say so and nothing is read. The decisions on order,
money and edits are in ``bot.autoread.reader``; the reactions in ``cogs.autoread.outlet``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import send_ephemeral
from bot.autoread.reader import Read
from bot.autoread.rules import IncomingMessage, voice_problem
from bot.autoread.service import AutoreadService
from bot.autoread.store import AutoreadSettings
from cogs.autoread.outlet import DiscordOutlet
from cogs.autoread.voices import ReadVoices
from cogs.common.guards import role_ids
from cogs.speak.names import GuildNames

if TYPE_CHECKING:
    from bot.app import ChatterboxBot

log = logging.getLogger(__name__)

DISABLED = (
    "Hands-free reading is not enabled on this bot: its owner must turn on the Message Content "
    "intent and set AUTOREAD_ENABLED=true (see the README, 'Hands-free reading')."
)
READ_TYPES = (discord.MessageType.default, discord.MessageType.reply)


def is_moderator(user: discord.Member | discord.User) -> bool:
    if not isinstance(user, discord.Member):
        return False
    perms = user.guild_permissions
    return perms.administrator or perms.manage_guild


def _voice_channel_id(member: discord.Member | None) -> int | None:
    if member is None or member.voice is None or member.voice.channel is None:
        return None
    return member.voice.channel.id


def describe(settings: AutoreadSettings, guild: discord.Guild, opted_in: int) -> str:
    text = guild.get_channel(settings.text_channel_id)
    voice = guild.get_channel(settings.voice_channel_id) if settings.voice_channel_id else None
    where = f"<#{text.id}>" if text is not None else "a deleted channel"
    lines = [
        f"Reading messages in {where} from members who opted in ({opted_in} so far).",
        f"Voice channel: {f'<#{voice.id}>' if voice is not None else 'the one I am in'}.",
        f"Announce the speaker (\u201cAlice said\u201d): {'on' if settings.announce else 'off'}.",
        f"Join the first opted-in member who writes: {'on' if settings.join_on_first_speaker else 'off'}.",
        "Each message read costs one request from its author's quota and the server's budget.",
    ]
    return "\n".join(lines)


@app_commands.guild_only()
class AutoreadCog(
    commands.GroupCog,
    name="Autoread",
    group_name="autoread",
    group_description="Hands-free: read a channel aloud for members who opt in",
):
    def __init__(self, bot: ChatterboxBot) -> None:
        self.bot = bot
        self.outlet = DiscordOutlet(bot)
        self.voices = ReadVoices(bot)
        self._service: AutoreadService | None = None
        #: Every message event this cog finished handling: (kind, message id, read or None).
        self.handled: list[tuple[str, int, Read | None]] = []
        self._changed = asyncio.Event()

    @property
    def service(self) -> AutoreadService:
        """Built on first use: ``chatterbox-bot sync`` loads the cogs without the services."""
        if self._service is None:
            core = self.bot.core
            self._service = AutoreadService(
                store=core.autoread,
                speech=core.speech,
                clock=self.bot.clock,
                outlet=self.outlet,
                max_chars=self.bot.settings.autoread_max_chars,
                voices=self.voices,
            )
        return self._service

    @property
    def enabled(self) -> bool:
        return self.bot.settings.autoread_enabled

    def _done(self, kind: str, message_id: int, read: Read | None = None) -> None:
        self.handled.append((kind, message_id, read))
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], Any]) -> Any:
        """``predicate()`` once truthy, re-checked after each handled event (for tests; add a
        timeout)."""
        while not (value := predicate()):
            await self._changed.wait()
        return value

    async def cog_unload(self) -> None:
        if self._service is not None:
            await self._service.close()
        await self.outlet.close()

    # -- moderators ---------------------------------------------------------------------

    @app_commands.command(
        name="setup", description="Read a channel aloud for members who opt in (moderators)"
    )
    @app_commands.describe(
        text_channel="The channel to read (a text channel, or a voice channel's own chat)",
        voice_channel="Only read members in this voice channel (default: the one I am in)",
        announce="Say who is speaking before each message (\u201cAlice said\u201d)",
        join_on_first_speaker="Join the voice channel of the first opted-in member who writes (default on)",
    )
    async def setup_command(
        self,
        interaction: discord.Interaction,
        text_channel: discord.TextChannel | discord.VoiceChannel,
        voice_channel: discord.VoiceChannel | None = None,
        announce: bool | None = None,
        join_on_first_speaker: bool | None = None,
    ) -> None:
        guild = interaction.guild
        if guild is None or not is_moderator(interaction.user):
            await send_ephemeral(
                interaction, "Only moderators (Manage Server) can set up hands-free reading."
            )
            return
        if not self.enabled:
            await send_ephemeral(interaction, DISABLED)
            return
        me = guild.me
        if not text_channel.permissions_for(me).view_channel:
            await send_ephemeral(
                interaction, f"I cannot see <#{text_channel.id}>; give me View Channel there first."
            )
            return
        if voice_channel is not None and not voice_channel.permissions_for(me).connect:
            await send_ephemeral(
                interaction, f"I cannot join <#{voice_channel.id}>; give me Connect and Speak there."
            )
            return
        previous = await self.service.settings(guild.id)
        settings = AutoreadSettings(
            guild_id=guild.id,
            text_channel_id=text_channel.id,
            voice_channel_id=voice_channel.id if voice_channel is not None else None,
            announce=announce if announce is not None else (previous.announce if previous else False),
            join_on_first_speaker=(
                join_on_first_speaker
                if join_on_first_speaker is not None
                else (previous.join_on_first_speaker if previous else True)
            ),
        )
        await self.service.save_settings(settings, actor_id=interaction.user.id)
        count = await self.service.store.opted_in_count(guild.id)
        log.info("user %s set up autoread in guild %s: %s", interaction.user.id, guild.id, settings)
        await send_ephemeral(
            interaction,
            "Hands-free reading is on.\n"
            + describe(settings, guild, count)
            + "\nMembers opt in with `/autoread me on`.",
        )

    @app_commands.command(name="off", description="Stop reading messages aloud in this server (moderators)")
    async def off(self, interaction: discord.Interaction) -> None:
        guild = interaction.guild
        if guild is None or not is_moderator(interaction.user):
            await send_ephemeral(
                interaction, "Only moderators (Manage Server) can turn hands-free reading off."
            )
            return
        removed = await self.service.turn_off(guild.id)
        await send_ephemeral(
            interaction,
            "Hands-free reading is off in this server."
            if removed
            else "Hands-free reading was not set up here.",
        )

    @app_commands.command(name="show", description="Show how hands-free reading is set up (moderators)")
    async def show(self, interaction: discord.Interaction) -> None:
        guild = interaction.guild
        if guild is None or not is_moderator(interaction.user):
            await send_ephemeral(interaction, "Only moderators (Manage Server) can see the reading setup.")
            return
        settings = await self.service.settings(guild.id)
        if settings is None:
            await send_ephemeral(interaction, "Hands-free reading is not set up here: use `/autoread setup`.")
            return
        count = await self.service.store.opted_in_count(guild.id)
        note = "" if self.enabled else "\n" + DISABLED
        await send_ephemeral(interaction, describe(settings, guild, count) + note)

    # -- members ------------------------------------------------------------------------

    @app_commands.command(
        name="me", description="Have your messages read aloud (on), stop it (off), or check"
    )
    @app_commands.describe(choice="on: read my messages aloud; off: stop; status: what is set")
    async def me(self, interaction: discord.Interaction, choice: Literal["on", "off", "status"]) -> None:
        guild = interaction.guild
        if guild is None:
            return
        user = interaction.user
        if choice == "status":
            opted = await self.service.store.opted_in(guild.id, user.id)
            lines = [
                "Your messages are read aloud here." if opted else "Your messages are not read aloud here."
            ]
            if opted:
                lines.append(await self.voices.describe(guild.id, user.id))
            reason = self.service.last_refusal(guild.id, user.id)
            if reason:
                lines.append(f"The last one I could not read: {reason}")
            await send_ephemeral(interaction, "\n".join(lines))
            return
        if choice == "on" and not self.enabled:
            await send_ephemeral(interaction, DISABLED)
            return
        changed = await self.service.store.set_opt_in(guild.id, user.id, choice == "on")
        if choice == "on":
            settings = await self.service.settings(guild.id)
            where = f" in <#{settings.text_channel_id}>" if settings is not None else ""
            text = (
                f"Your messages{where} will be read aloud while you are in voice with me, in your "
                "`/voices default` voice. Each one counts against your quota. A ⚠️ on a message "
                "means it was not read: `/autoread me status` says why. `/autoread me off` stops it."
            )
            if settings is None:
                text += " (A moderator has not set up a channel yet.)"
        else:
            text = (
                "Your messages are no longer read aloud." if changed else "Your messages were not being read."
            )
        await send_ephemeral(interaction, text)

    # -- events -------------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        guild = message.guild
        if not self.enabled or guild is None or message.type not in READ_TYPES:
            return
        author = message.author
        member = author if isinstance(author, discord.Member) else None
        incoming = IncomingMessage(
            guild_id=guild.id,
            channel_id=message.channel.id,
            message_id=message.id,
            author_id=author.id,
            author_name=author.display_name,
            content=message.content,
            role_ids=role_ids(author),
            author_is_bot=author.bot or message.webhook_id is not None,
            attachments=len(message.attachments) + len(message.stickers),
        )

        def voice_check(settings: AutoreadSettings) -> str | None:
            return voice_problem(
                author_channel_id=_voice_channel_id(member),
                bot_channel_id=_voice_channel_id(guild.me),
                configured_channel_id=settings.voice_channel_id,
                join_on_first_speaker=settings.join_on_first_speaker,
            )

        names = GuildNames.for_message(guild, message)
        read: Read | None = None
        try:
            read = await self.service.on_message(incoming, names, voice_check)
        finally:
            self._done("message", message.id, read)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        content = payload.data.get("content")
        if payload.guild_id is None or self._service is None or not isinstance(content, str):
            return  # no service yet: no message was taken in, so there is nothing to edit
        guild = self.bot.get_guild(payload.guild_id)
        if guild is None:
            return
        try:
            await self._service.on_edit(payload.guild_id, payload.message_id, content, GuildNames(guild))
        finally:
            self._done("edit", payload.message_id)

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if payload.guild_id is None or self._service is None:
            return
        try:
            await self._service.on_delete(payload.guild_id, payload.message_id)
        finally:
            self._done("delete", payload.message_id)
