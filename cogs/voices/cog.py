"""``/voices …``: the voice library in Discord — thin: check options, call ``bot.voices``, reply.

Every answer is private (ephemeral): a member's voices are their business, and a refusal
should not litter the channel. Order of checks in ``add``: the cheap ones first (name, consent,
limits, the attachment's type and size) answered at once, then the download and FFmpeg after
a private "thinking…", so a member at a limit never waits for a download to be told.

Moderator commands (``server-add``, ``revoke``, ``limits``, ``storage``) are checked by the bot
itself (``moderator_only``), as for ``/quota``: Discord's permission hint can be changed per
server and an old client can send anything.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import send_ephemeral
from bot.gateway.errors import InvalidTTSRequest
from bot.gateway.models import TTSParams
from bot.quotas.errors import QuotaExceeded
from bot.quotas.wallet import SubmissionsPaused
from bot.speech import reference
from bot.speech.errors import SpeechError
from bot.speech.events import DeliveryTarget, Requester
from bot.speech.voice_ref import voice_ref
from bot.voices import ClipRejected, VoiceError, normalise_clip
from bot.voices.library import NAME_MAX
from cogs.common.guards import is_moderator, moderator_only, role_ids
from cogs.speak import checks as _checks
from cogs.voices.choice import NO_VOICES_TEXT, NO_VOICES_VALUE, voice_choices, voice_label
from cogs.voices.hosting import DiscordClipHost
from cogs.voices.report import tell_owner

if TYPE_CHECKING:
    from bot.app import ChatterboxBot

log = logging.getLogger(__name__)

PREVIEW_TEXT = "Hello! This is how I sound. The quick brown fox jumps over the lazy dog."
SCOPE_CHOICES = [
    app_commands.Choice(name="private (only you)", value="private"),
    app_commands.Choice(name="server (everyone here may use it)", value="server"),
]
WHO_CHOICES = [
    app_commands.Choice(name="everyone may add voices", value="everyone"),
    app_commands.Choice(name="only moderators", value="moderators"),
]
CONSENT = (
    "Set to True only if you are the person speaking in the clip, or you have their "
    "permission to clone their voice"
)


class VoicesCog(commands.GroupCog, group_name="voices", description="Saved voices: your voice library"):
    def __init__(self, bot: ChatterboxBot) -> None:
        self.bot = bot
        self.host = DiscordClipHost(bot)
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:  # type: ignore[override]
        if interaction.guild_id is None:
            raise app_commands.CheckFailure("Saved voices work in servers only.")
        return _checks.require_resolved_options(interaction)

    # -- helpers ----------------------------------------------------------------------------

    async def _store_clip(
        self,
        interaction: discord.Interaction[Any],
        name: str,
        clip: discord.Attachment,
        consent: bool,
        *,
        preset: bool,
        tuning: tuple[float | None, float | None, float | None] = (None, None, None),
    ) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None
        library = self.bot.core.voices
        mod = is_moderator(interaction)
        settings = self.bot.settings
        try:
            await library.check_can_add(
                guild_id, interaction.user.id, name, consent=consent, is_moderator=mod, preset=preset
            )
        except VoiceError as exc:
            await send_ephemeral(interaction, exc.user_message)
            return
        problem = reference.metadata_problem(
            clip.content_type, clip.filename, clip.size, settings.voice_ref_max_bytes
        )
        if problem is not None:
            await send_ephemeral(interaction, problem)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            data = await clip.read()
        except discord.HTTPException:
            await send_ephemeral(interaction, "I couldn't download the clip from Discord; please try again.")
            return
        if len(data) > settings.voice_ref_max_bytes:
            await send_ephemeral(
                interaction,
                reference.metadata_problem(
                    clip.content_type, clip.filename, len(data), settings.voice_ref_max_bytes
                )
                or "Too large.",
            )
            return
        try:
            normalised = await normalise_clip(
                data, ffmpeg=self.bot.ffmpeg, max_seconds=settings.voice_ref_max_seconds
            )
            voice = await library.add(
                guild_id,
                interaction.user.id,
                name,
                normalised,
                consent=consent,
                is_moderator=mod,
                preset=preset,
                tuning=tuning,
            )
        except (ClipRejected, VoiceError) as exc:
            await send_ephemeral(interaction, exc.user_message)
            return
        how = (
            "a server voice everyone here can pick"
            if preset
            else "private: only you can use it. Share it with `/voices share`"
        )
        await send_ephemeral(
            interaction,
            f"Saved “{voice.name}” ({voice.clip_seconds:.1f} s), {how}. This is the clip that will be used; "
            f"try it with `/voices preview` or `/speak voice:{voice.name}`.",
            file=discord.File(io.BytesIO(normalised.wav), filename="voice.wav"),
        )

    # -- members ----------------------------------------------------------------------------

    @app_commands.command(name="add", description="Save a voice from a short clip of speech (5-10 s)")
    @app_commands.describe(
        name="A name for the voice (1-32 characters)",
        clip="Audio of the voice: clean speech",
        consent=CONSENT,
    )
    async def add(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, NAME_MAX],
        clip: discord.Attachment,
        consent: bool,
    ) -> None:
        await self._store_clip(interaction, name, clip, consent, preset=False)

    @app_commands.command(name="list", description="The voices you can use here")
    async def list_(self, interaction: discord.Interaction[Any]) -> None:
        assert interaction.guild_id is not None
        library = self.bot.core.voices
        mine = await library.owned(interaction.guild_id, interaction.user.id)
        others = [
            v
            for v in await library.usable(interaction.guild_id, interaction.user.id)
            if v.owner_id != interaction.user.id or v.is_preset
        ]
        defaults = await library.defaults(interaction.guild_id, interaction.user.id)
        lines = ["**Your voices**"]
        for v in mine:
            state = (
                f"revoked by moderators ({v.revoke_reason or 'no reason given'})" if v.revoked else v.scope
            )
            lines.append(f"• {v.name} — {state}")
        if not mine:
            lines.append("none yet: `/voices add`")
        lines.append("**Server and shared voices**")
        lines += [f"• {voice_label(v, interaction.user.id)}" for v in others] or ["none"]
        if defaults.voice is not None:
            lines.append(f"Your default for /speak: {defaults.voice.name}")
        elif defaults.voice_problem:
            lines.append(f"Your default voice can't be used any more: {defaults.voice_problem}")
        await send_ephemeral(interaction, "\n".join(lines)[:1990])

    @app_commands.command(name="preview", description="Hear a short sample of a voice (made once, then free)")
    @app_commands.describe(name="The voice")
    async def preview(self, interaction: discord.Interaction[Any], name: str) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None
        library = self.bot.core.voices
        try:
            voice = await library.resolve(guild_id, interaction.user.id, name)
        except VoiceError as exc:
            await send_ephemeral(interaction, exc.user_message if name != NO_VOICES_VALUE else NO_VOICES_TEXT)
            return
        cached = await library.preview(voice.id)
        if cached is not None:
            await send_ephemeral(
                interaction,
                f"“{voice.name}” (a saved sample; costs nothing):",
                file=discord.File(io.BytesIO(cached), filename="preview.wav"),
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        member = interaction.user
        try:
            voice = await self.bot.core.voice_audio.check(voice)  # its URL is made at the POST
            params = TTSParams(
                exaggeration=voice.exaggeration if voice.exaggeration is not None else 0.5,
                temperature=voice.temperature if voice.temperature is not None else 0.8,
                cfg=voice.cfg if voice.cfg is not None else 0.5,
            )
            job = await self.bot.core.speech.start(
                Requester(member.id, member.display_name, guild_id, role_ids(member)),
                PREVIEW_TEXT,
                voice_url=voice_ref(voice.id),
                voice_name=voice.name,
                params=params,
                target=DeliveryTarget(kind="file"),
            )
            result = await job.result()
        except (VoiceError, InvalidTTSRequest, QuotaExceeded, SubmissionsPaused, SpeechError) as exc:
            await send_ephemeral(interaction, f"The preview could not be made: {_message(exc)}")
            return
        except Exception as exc:  # a GatewayError subclass: the provider's text stays in the log
            log.warning("preview of voice %s failed: %r", voice.id, exc)
            await send_ephemeral(interaction, f"The preview could not be made: {_message(exc)}")
            return
        await library.store_preview(voice.id, result.audio)
        await self.bot.core.speech.mark_delivered(job.job_id)
        await send_ephemeral(
            interaction,
            f"“{voice.name}”: {PREVIEW_TEXT} (saved: the next preview is free)",
            file=discord.File(io.BytesIO(result.audio), filename="preview.wav"),
        )

    @app_commands.command(
        name="share", description="Share one of your voices with this server, or make it private"
    )
    @app_commands.describe(name="Your voice", scope="Who may use it")
    @app_commands.choices(scope=SCOPE_CHOICES)
    async def share(self, interaction: discord.Interaction[Any], name: str, scope: str) -> None:
        assert interaction.guild_id is not None
        try:
            voice = await self.bot.core.voices.share(interaction.guild_id, interaction.user.id, name, scope)
        except VoiceError as exc:
            await send_ephemeral(interaction, exc.user_message)
            return
        where = "everyone in this server can now use it" if scope == "server" else "only you can use it now"
        await send_ephemeral(interaction, f"“{voice.name}” is {scope}: {where}.")

    @app_commands.command(name="rename", description="Rename one of your voices")
    @app_commands.describe(name="Your voice", new_name="Its new name (1-32 characters)")
    async def rename(
        self, interaction: discord.Interaction[Any], name: str, new_name: app_commands.Range[str, 1, NAME_MAX]
    ) -> None:
        assert interaction.guild_id is not None
        try:
            voice = await self.bot.core.voices.rename(
                interaction.guild_id,
                interaction.user.id,
                name,
                new_name,
                is_moderator=is_moderator(interaction),
            )
        except VoiceError as exc:
            await send_ephemeral(interaction, exc.user_message)
            return
        await send_ephemeral(interaction, f"Renamed to “{voice.name}”.")

    @app_commands.command(name="delete", description="Delete one of your voices with its clip and samples")
    @app_commands.describe(name="Your voice")
    async def delete(self, interaction: discord.Interaction[Any], name: str) -> None:
        assert interaction.guild_id is not None
        try:
            voice = await self.bot.core.voices.delete(
                interaction.guild_id, interaction.user.id, name, is_moderator=is_moderator(interaction)
            )
        except VoiceError as exc:
            await send_ephemeral(interaction, exc.user_message)
            return
        if voice.storage_channel_id is not None and voice.storage_message_id is not None:
            await self.host.delete(voice.storage_channel_id, voice.storage_message_id)
        await self.bot.core.cache.forget_clip(voice.clip_sha256)  # audio made from it, and its takes
        await send_ephemeral(
            interaction,
            f"Deleted “{voice.name}”: its clip, its saved sample and the audio cached from it are gone.",
        )

    @app_commands.command(name="default", description="Your defaults for /speak: voice and tuning")
    @app_commands.describe(
        name="The voice /speak uses when you pick none",
        exaggeration="0 to 1",
        temperature="0.1 to 1",
        cfg="0 to 2",
        clear="Forget your default voice",
    )
    async def default(
        self,
        interaction: discord.Interaction[Any],
        name: str | None = None,
        exaggeration: app_commands.Range[float, 0.0, 1.0] | None = None,
        temperature: app_commands.Range[float, 0.1, 1.0] | None = None,
        cfg: app_commands.Range[float, 0.0, 2.0] | None = None,
        clear: bool = False,
    ) -> None:
        assert interaction.guild_id is not None
        problem = _tuning_problem(exaggeration, temperature, cfg)
        if problem is not None:
            await send_ephemeral(interaction, problem)
            return
        library = self.bot.core.voices
        if name == NO_VOICES_VALUE:
            await send_ephemeral(interaction, NO_VOICES_TEXT)
            return
        try:
            if name is None and not clear and exaggeration is None and temperature is None and cfg is None:
                got = await library.defaults(interaction.guild_id, interaction.user.id)
            else:
                got = await library.set_defaults(
                    interaction.guild_id,
                    interaction.user.id,
                    voice=name,
                    clear_voice=clear,
                    exaggeration=exaggeration,
                    temperature=temperature,
                    cfg=cfg,
                )
        except VoiceError as exc:
            await send_ephemeral(interaction, exc.user_message)
            return
        voice = got.voice.name if got.voice else "the built-in voice"
        tuning = (
            " · ".join(
                f"{label} {value:g}"
                for label, value in (
                    ("exaggeration", got.exaggeration),
                    ("temperature", got.temperature),
                    ("cfg", got.cfg),
                )
                if value is not None
            )
            or "built-in tuning"
        )
        note = f"\n{got.voice_problem}" if got.voice_problem else ""
        await send_ephemeral(interaction, f"Your /speak defaults here: {voice}, {tuning}.{note}")

    # -- moderators -------------------------------------------------------------------------

    @app_commands.command(name="server-add", description="Moderators: add a server voice everyone can pick")
    @app_commands.describe(
        name="A name (1-32 characters)",
        clip="Audio of the voice",
        consent=CONSENT,
        exaggeration="Default 0 to 1",
        temperature="Default 0.1 to 1",
        cfg="Default 0 to 2",
    )
    @moderator_only
    async def server_add(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, NAME_MAX],
        clip: discord.Attachment,
        consent: bool,
        exaggeration: app_commands.Range[float, 0.0, 1.0] | None = None,
        temperature: app_commands.Range[float, 0.1, 1.0] | None = None,
        cfg: app_commands.Range[float, 0.0, 2.0] | None = None,
    ) -> None:
        problem = _tuning_problem(exaggeration, temperature, cfg)
        if problem is not None:
            await send_ephemeral(interaction, problem)
            return
        await self._store_clip(
            interaction, name, clip, consent, preset=True, tuning=(exaggeration, temperature, cfg)
        )

    @app_commands.command(
        name="revoke", description="Moderators: stop a voice working in this server at once"
    )
    @app_commands.describe(
        name="The voice",
        owner="Its owner (when several voices share the name)",
        reason="Why (the owner is told)",
    )
    @moderator_only
    async def revoke(
        self,
        interaction: discord.Interaction[Any],
        name: str,
        reason: app_commands.Range[str, 1, 200],
        owner: discord.Member | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        try:
            voice = await self.bot.core.voices.revoke(
                interaction.guild_id,
                interaction.user.id,
                name,
                owner_id=owner.id if owner else None,
                reason=reason,
            )
        except VoiceError as exc:
            await send_ephemeral(interaction, exc.user_message)
            return
        told = await tell_owner(
            self.bot,
            voice.owner_id,
            voice.name,
            voice.revoke_reason or "no reason given",
            getattr(interaction.guild, "name", "this server"),
        )
        note = (
            "Its owner was told by direct message."
            if told
            else "Its owner could not be messaged directly; they see it is revoked when they use it or open "
            "`/voices list`."
        )
        await send_ephemeral(
            interaction,
            f"Revoked “{voice.name}” (owner <@{voice.owner_id}>): it no longer works here. {note}",
        )

    @app_commands.command(name="limits", description="Moderators: voices per member and server, who may add")
    @app_commands.describe(
        per_member="Voices one member may save",
        per_server="Voices this server may hold",
        who="Who may add voices",
    )
    @app_commands.choices(who=WHO_CHOICES)
    @moderator_only
    async def limits(
        self,
        interaction: discord.Interaction[Any],
        per_member: app_commands.Range[int, 0, 1000] | None = None,
        per_server: app_commands.Range[int, 0, 1000] | None = None,
        who: str | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        library = self.bot.core.voices
        try:
            if per_member is None and per_server is None and who is None:
                got = await library.limits(interaction.guild_id)
            else:
                got = await library.set_limits(
                    interaction.guild_id,
                    actor_id=interaction.user.id,
                    max_per_member=per_member,
                    max_per_server=per_server,
                    clone_policy=who,
                )
        except VoiceError as exc:
            await send_ephemeral(interaction, exc.user_message)
            return
        whom = "everyone" if got.clone_policy == "everyone" else "moderators only"
        await send_ephemeral(
            interaction,
            f"Voice limits here: {got.max_per_member} per member, "
            f"{got.max_per_server} in the server; who may add voices: {whom}.",
        )

    @app_commands.command(
        name="storage", description="Moderators: the channel where the bot keeps voice clips"
    )
    @app_commands.describe(channel="A channel members need not read (the bot posts clip files there)")
    @moderator_only
    async def storage(self, interaction: discord.Interaction[Any], channel: discord.TextChannel) -> None:
        assert interaction.guild_id is not None and interaction.guild is not None
        me = interaction.guild.me
        perms = channel.permissions_for(me) if me is not None else discord.Permissions.none()
        needed = (
            ("View Channel", perms.view_channel),
            ("Send Messages", perms.send_messages),
            ("Attach Files", perms.attach_files),
            ("Read Message History", perms.read_message_history),
        )
        missing = [label for label, ok in needed if not ok]
        if missing:
            await send_ephemeral(
                interaction,
                f"I can't keep clips in {channel.mention}: I'm missing "
                f"{', '.join(missing)} there. Nothing was changed.",
            )
            return
        await self.bot.core.voices.set_storage_channel(
            interaction.guild_id, channel.id, actor_id=interaction.user.id
        )
        extra = (
            " (This bot serves clips from its own web address, so the channel is only a fallback.)"
            if self.bot.core.voice_audio.self_hosted
            else ""
        )
        await send_ephemeral(interaction, f"Voice clips will be kept in {channel.mention}.{extra}")

    # -- autocomplete -----------------------------------------------------------------------

    @preview.autocomplete("name")
    @default.autocomplete("name")
    @revoke.autocomplete("name")
    async def _usable_names(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return await voice_choices(self.bot, interaction, current)

    @share.autocomplete("name")
    @rename.autocomplete("name")
    @delete.autocomplete("name")
    async def _own_names(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return await voice_choices(self.bot, interaction, current, own_only=True)


def _tuning_problem(exaggeration: float | None, temperature: float | None, cfg: float | None) -> str | None:
    """The option checks of /speak for optional tuning (an omitted value is always fine)."""
    built_in = TTSParams()
    return _checks.check_params(
        built_in.exaggeration if exaggeration is None else exaggeration,
        built_in.temperature if temperature is None else temperature,
        built_in.cfg if cfg is None else cfg,
    )


def _message(exc: Exception) -> str:
    if isinstance(exc, QuotaExceeded):
        return exc.user_message
    return getattr(exc, "user_message", None) or "something went wrong; please try again later."
