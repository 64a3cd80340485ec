"""``/speak``: text in, speech out — with a live job card, a Cancel button and safe delivery;
also Apps → "Speak this message" / "Speak in voice chat" and the result buttons.

The cog is thin: it parses and checks the options, calls ``SpeechService.start`` and renders
what comes back. The card's wording lives in ``cogs.speak.card``, the option checks in
``cogs.speak.checks``, the per-job event handling and delivery in ``cogs.speak.session``, and the
"interaction token or channel" choice in ``cogs.speak.reply``.

Flow and decisions (every request — /speak, a context menu, Re-roll — goes through ``_speak``):

0. ``/speak`` chooses the saved voice and the tuning before anything else
   (``cogs.voices.choice``: the typed option, else the member's ``/voices default``); an
   unknown, private or revoked voice, or ``voice`` and ``clip`` together, is refused privately.
   The job is given the saved voice itself (``voice:<id>``), not a link: the clip's URL is
   made right before each POST (``bot.speech.voice_ref``), so a job that waits never sends an
   expired one; a voice revoked or deleted meanwhile fails the job there, refunded.
   The text is cleaned first (``bot.speech.cleanup``, names from ``cogs.speak.names``): what is
   checked, priced, cached, shown on the card and spoken is the spoken form. A text with
   nothing left to say is refused privately and costs nothing.
1. Checks that need no I/O (the text and its chunk plan, by the core's ``plan``; ranges,
   output, the attachment's type and size, the bot's Send Messages / Attach Files
   permissions in the channel) run first and a
   refusal is the ephemeral *initial* response: the member sees only a private message and
   nothing is charged. discord.py does not enforce ``Range`` at runtime, hence the re-checks.
2. Then the command defers publicly with "thinking…" (well inside Discord's 3 s), downloads
   and probes the voice clip if there is one, and starts the job. A refusal from here on
   (clip too long, quota, guild or wallet pause, invalid request) deletes the "thinking"
   message and answers ephemerally: Discord would otherwise turn the first follow-up into
   the public original response.
3. The "thinking" message becomes the job card, edited as events arrive, with a Cancel
   button (a ``DynamicItem`` whose custom id carries the job id, so clicks are routed without
   keeping a View per message). Only the requester or a member with Manage Server may cancel.
4. On completion the audio is posted as a follow-up (a channel message once the token is
   dead), fitted to the interaction's ``attachment_size_limit`` (discord.py exposes it as
   ``Interaction.filesize_limit``), and the job is marked delivered.
5. At start (loaded in ``setup_hook``, running once the bot is ready) the cog hands
   ``resume_pending`` a deliverer that posts resumed jobs' audio as channel messages and
   closes their old cards; a resumed job that ends without audio gets its old card closed
   with the reason, so no card is left saying "queued" with a Cancel button forever.
6. Results carry Re-roll and Play in voice (``cogs.speak.buttons``: persistent DynamicItems
   naming the result's take). Re-roll is the requester's, a new paid take (``fresh=True``,
   refused when the clip's Discord link has expired); Play in voice plays the cached
   chunks in the clicker's voice channel, free. The context menus speak the target message
   (its mentions named from the message Discord resolved) with the invoker's defaults.
7. When the server's daily request budget or cost cap refuses a /speak, the moderators'
   alert channel hears of it once per server and quota day (``/quota alerts`` promises it).
   The "once" is kept in memory: a restart may repeat that day's alert once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.audio import AudioError, TooLargeForUpload, fit_upload
from bot.cache import Take, clip_sha256
from bot.errors import UserFacingError
from bot.gateway.errors import InvalidTTSRequest
from bot.gateway.models import TTSParams
from bot.playback.clip import VoiceClip
from bot.quotas.errors import QuotaExceeded
from bot.quotas.wallet import SubmissionsPaused
from bot.speech import reference
from bot.speech.cleanup import NOTHING_TO_SAY, Names, clean_text
from bot.speech.errors import ServiceStopping
from bot.speech.events import CostPlan, DeliveryTarget, Requester, ResumedJob, SpeechResult
from bot.voices import Voice, VoiceError
from cogs.common.alerts import alert_moderators
from cogs.common.guards import role_ids
from cogs.speak import card as _card
from cogs.speak import checks as _checks
from cogs.speak.buttons import DYNAMIC_ITEMS, result_view
from cogs.speak.names import GuildNames
from cogs.speak.reply import Reply
from cogs.speak.session import SpeakSession, out_of_credit
from cogs.voices import choice as _voices

if TYPE_CHECKING:
    from bot.app import ChatterboxBot

log = logging.getLogger(__name__)

#: Discord's limit for the option (``Range`` needs a constant); the setting
#: CHATTERBOX_MAX_TEXT_CHARS is checked in code as well.
TEXT_OPTION_MAX = 2000

OUTPUT_CHOICES = [
    app_commands.Choice(name="file in this channel", value="file"),
    app_commands.Choice(name="play in my voice channel", value="voice"),
    app_commands.Choice(name="both", value="both"),
    app_commands.Choice(name="voice message in this channel", value="voice_message"),
]


CANCEL_TEMPLATE = r"speak:cancel:(?P<job>[\w-]{1,80})"

SPEAK_MESSAGE = "Speak this message"
SPEAK_MESSAGE_IN_VOICE = "Speak in voice chat"


@dataclass(frozen=True)
class SpeakRequest:
    """What one request asks for, whichever way it came (/speak, a context menu, Re-roll)."""

    text: str  # as written; cleaned by ``_speak``
    kind: str
    params: tuple[float, float, float]  # exaggeration, temperature, cfg
    names: Names
    attachment: discord.Attachment | None = None  # a clip to download and check (/speak)
    voice_url: str | None = None  # a clip already known (Re-roll)
    voice_name: str | None = None
    clip_sha256: str | None = None
    saved_voice: Voice | None = None  # a voice from the library; its URL is made after deferring
    fresh: bool = False  # a new take even if cached (Re-roll)
    note: str | None = None  # a line on the card


#: ``QuotaExceeded.code`` of the refusals that concern the whole server (moderators are told).
BUDGET_CODES = frozenset({"guild_budget", "cost_cap"})


class CancelButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CANCEL_TEMPLATE):
    """The card's Cancel button; the custom id names the job."""

    def __init__(self, job_id: str) -> None:
        button: discord.ui.Button[Any] = discord.ui.Button(
            label="Cancel", style=discord.ButtonStyle.danger, custom_id=f"speak:cancel:{job_id}"
        )
        super().__init__(button)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: Any, /
    ) -> CancelButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        cog = interaction.client.get_cog("Speak")
        if not isinstance(cog, SpeakCog):
            await interaction.response.send_message("This job is no longer running.", ephemeral=True)
            return
        await cog.cancel_clicked(interaction, self.job_id)


def card_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


class SpeakCog(commands.Cog, name="Speak"):
    def __init__(self, bot: ChatterboxBot) -> None:
        self.bot = bot
        self.sessions: dict[str, SpeakSession] = {}
        #: Resuming the jobs a previous run left (started at load, runs once the bot is ready).
        self.resume_task: asyncio.Task[int] | None = None
        #: (guild, quota day's reset time) pairs whose budget alert went out.
        self._budget_alerted: set[tuple[int, datetime | None]] = set()
        #: Apps → "Speak this message" / "Speak in voice chat" (context menus cannot be
        #: declared with a decorator inside a cog; they are added to the tree at load).
        self.menus = (
            app_commands.ContextMenu(name=SPEAK_MESSAGE, callback=self.speak_message_menu),
            app_commands.ContextMenu(name=SPEAK_MESSAGE_IN_VOICE, callback=self.speak_message_in_voice_menu),
        )
        for menu in self.menus:
            menu.guild_only = True

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return _checks.require_resolved_options(interaction)

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(CancelButton, *DYNAMIC_ITEMS)
        for menu in self.menus:
            self.bot.tree.add_command(menu)
        self.resume_task = asyncio.create_task(self._resume(), name="speak-resume-pending")

    async def cog_unload(self) -> None:
        """Stop what the cog started (the bot is closing): nothing of it may outlive the bot."""
        self.bot.remove_dynamic_items(CancelButton, *DYNAMIC_ITEMS)
        for menu in self.menus:
            self.bot.tree.remove_command(menu.name, type=menu.type)
        if self.resume_task is not None:
            # Await the cancellation: the task may be inside a database query, and the engine
            # is disposed right after the cogs unload; closing it under a half-cancelled
            # aiosqlite query hangs the shutdown.
            self.resume_task.cancel()
            await asyncio.gather(self.resume_task, return_exceptions=True)
        for session in list(self.sessions.values()):
            await session.close()

    # -- /speak -----------------------------------------------------------------------------

    @app_commands.command(name="speak", description="Turn text into speech with Chatterbox TTS")
    @app_commands.describe(
        text="What to say (long text is split into sentences)",
        voice="A saved voice (yours, shared here, or a server voice); default: your /voices default",
        clip="Or a one-off voice clip to clone (audio file, up to 30 s; the first ~10 s matter)",
        exaggeration="Emotion intensity, 0 to 1 (default 0.5)",
        temperature="Randomness, 0.1 to 1 (default 0.8)",
        cfg="Guidance / pacing, 0 to 2 (default 0.5)",
        output="Where the audio goes (default: file in this channel)",
    )
    @app_commands.choices(output=OUTPUT_CHOICES)
    @app_commands.guild_only()
    async def speak(
        self,
        interaction: discord.Interaction[Any],
        text: app_commands.Range[str, 1, TEXT_OPTION_MAX],
        voice: str | None = None,
        clip: discord.Attachment | None = None,
        exaggeration: app_commands.Range[float, 0.0, 1.0] | None = None,
        temperature: app_commands.Range[float, 0.1, 1.0] | None = None,
        cfg: app_commands.Range[float, 0.0, 2.0] | None = None,
        output: str = "file",
    ) -> None:
        # A plain ``str`` (not ``Choice[str]``): discord.py would reject an unknown value with
        # a bare TransformerError; ``_checks.check_output`` explains it to the member instead.
        assert interaction.guild_id is not None
        try:  # the saved voice and the tuning (cogs.voices.choice has the precedence)
            chosen = await _voices.choose(
                self.bot, interaction.guild_id, interaction.user.id, voice=voice, clip_given=clip is not None,
                exaggeration=exaggeration, temperature=temperature, cfg=cfg)
        except VoiceError as exc:
            await interaction.response.send_message(exc.user_message, ephemeral=True)
            return
        await self._speak(interaction, SpeakRequest(
            text=text, kind=output, params=(chosen.exaggeration, chosen.temperature, chosen.cfg),
            attachment=clip, names=GuildNames(interaction.guild), saved_voice=chosen.voice, note=chosen.note,
        ))

    @speak.autocomplete("voice")
    async def _voice_names(self, interaction: discord.Interaction[Any], current: str
                           ) -> list[app_commands.Choice[str]]:
        return await _voices.voice_choices(self.bot, interaction, current)

    async def _speak(self, interaction: discord.Interaction[Any], request: SpeakRequest) -> None:
        """The one path of every request (/speak, the context menus, Re-roll): clean the
        text, check, defer, start the job and hand its events to a ``SpeakSession``."""
        kind = request.kind
        exaggeration, temperature, cfg = request.params
        voice = request.attachment
        spoken = clean_text(request.text, request.names)
        if request.text.strip() and not spoken:
            plan: CostPlan | str = NOTHING_TO_SAY
        else:
            plan = self._quick_checks(interaction, spoken, voice, exaggeration, temperature, cfg, kind)
        if isinstance(plan, str):
            await interaction.response.send_message(plan, ephemeral=True)
            return
        callback = await interaction.response.defer(thinking=True)
        card_id = callback.message_id if callback is not None else None
        reply = Reply(clock=self.bot.clock, channel=interaction.channel, interaction=interaction,  # type: ignore[arg-type]
                      card_id=card_id)
        card_started = False
        try:
            voice_url, voice_name, sha = request.voice_url, request.voice_name, request.clip_sha256
            if voice is not None:
                problem, data = await self._check_voice_clip(voice)
                if problem is not None:
                    await reply.refuse(problem)
                    return
                voice_url, voice_name, sha = voice.url, voice.filename, clip_sha256(data)
            elif request.saved_voice is not None:
                try:  # the clip's URL is made right before each POST (bot.speech.voice_ref)
                    saved = await _voices.ready(self.bot, request.saved_voice)
                except VoiceError as exc:
                    await reply.refuse(exc.user_message)
                    return
                voice_url, voice_name, sha = _voices.job_voice(saved), saved.name, saved.clip_sha256
            member = interaction.user
            session = SpeakSession(
                bot=self.bot,
                reply=reply,
                card=_card.Card(
                    requester=member.mention, text=spoken, output=kind, exaggeration=exaggeration,
                    temperature=temperature, cfg=cfg, voice_name=voice_name, note=request.note,
                ),
                requester_id=member.id,
                requester_name=member.display_name,
                guild_id=interaction.guild_id,
                output=kind,
                upload_limit=interaction.filesize_limit,
                make_view=card_view,
                on_finished=self._forget,
                make_result_view=result_view,
            )
            target = _delivery_target(interaction, kind, card_id)
            try:
                job = await self.bot.core.speech.start(
                    Requester(member.id, member.display_name, interaction.guild_id, role_ids(member)),
                    spoken,
                    voice_url=voice_url,
                    params=TTSParams(exaggeration=exaggeration, temperature=temperature, cfg=cfg),
                    target=target,
                    on_event=session.on_event,
                    plan=plan,
                    clip_sha256=sha,
                    voice_name=voice_name,
                    fresh=request.fresh,
                )
            except (InvalidTTSRequest, QuotaExceeded, SubmissionsPaused, ServiceStopping) as exc:
                text = _refusal_text(exc)
                if isinstance(exc, SubmissionsPaused):
                    told = await out_of_credit(self.bot, interaction.guild_id, member.display_name)
                    text = _card.out_of_credit_refusal(text, told)
                await reply.refuse(text)
                if isinstance(exc, QuotaExceeded) and exc.code in BUDGET_CODES:
                    await self._budget_reached(interaction.guild_id, exc, member.display_name)
                return
            card_started = True
            session.attach(job)
            if not session.finished.is_set():
                self.sessions[job.job_id] = session
            if kind in ("voice", "both") and isinstance(member, discord.Member):
                await session.start_voice(member, spoken, interaction.channel_id)
        except Exception:
            if not card_started:  # let the tree's apology be a private message, not the card
                try:
                    await interaction.delete_original_response()
                except discord.HTTPException:
                    pass
            raise

    def _quick_checks(
        self,
        interaction: discord.Interaction[Any],
        text: str,
        voice: discord.Attachment | None,
        exaggeration: float,
        temperature: float,
        cfg: float,
        output: str,
    ) -> CostPlan | str:
        """Everything checkable without I/O, in the order a member would fix it: the problem,
        or the text's plan (made once here, by the core's rules, and handed to
        ``SpeechService.start``)."""
        settings = self.bot.settings
        try:
            plan = self.bot.core.speech.plan(text, max_chars=TEXT_OPTION_MAX)
        except InvalidTTSRequest as exc:
            return exc.user_message
        problem = _checks.check_params(exaggeration, temperature, cfg) or _checks.check_output(output)
        if problem is None and voice is not None:
            problem = reference.metadata_problem(
                voice.content_type, voice.filename, voice.size, settings.voice_ref_max_bytes
            )
        if problem is None:
            problem = self._check_channel(interaction)
        return plan if problem is None else problem

    @staticmethod
    def _check_channel(interaction: discord.Interaction[Any]) -> str | None:
        channel, guild = interaction.channel, interaction.guild
        if guild is not None and guild.me is not None and hasattr(channel, "permissions_for"):
            perms = channel.permissions_for(guild.me)  # type: ignore[union-attr]
        else:
            perms = interaction.app_permissions
        return _checks.missing_channel_permissions(
            view=perms.view_channel, send=perms.send_messages, attach=perms.attach_files
        )

    async def _check_voice_clip(self, voice: discord.Attachment) -> tuple[str | None, bytes]:
        """(the problem or None, the clip's bytes: the audio cache keys on their hash)."""
        settings = self.bot.settings
        try:
            data = await voice.read()
        except discord.HTTPException:
            return "I couldn't download the voice clip from Discord; please try again.", b""
        try:
            await reference.check_clip(
                data, content_type=voice.content_type, filename=voice.filename,
                max_bytes=settings.voice_ref_max_bytes, max_seconds=settings.voice_ref_max_seconds,
                ffmpeg=self.bot.ffmpeg,
            )
        except InvalidTTSRequest as exc:
            return exc.user_message, data
        return None, data

    async def _budget_reached(self, guild_id: int | None, exc: QuotaExceeded, requester: str) -> None:
        """Tell the moderators once per server and quota day that the budget refused a /speak."""
        if guild_id is None:
            return
        key = (guild_id, exc.resets_at)
        if key in self._budget_alerted:
            return
        self._budget_alerted.add(key)
        text = _card.budget_alert(exc.user_message, discord.utils.escape_markdown(requester))
        try:
            await alert_moderators(self.bot, guild_id, text)
        except Exception:
            log.exception("could not alert the moderators about the server's budget")

    def _forget(self, session: SpeakSession) -> None:
        if session.job_id is not None:
            self.sessions.pop(session.job_id, None)

    # -- Apps → Speak this message ---------------------------------------------------------

    async def speak_message_menu(
        self, interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        await self._speak_message(interaction, message, "file")

    async def speak_message_in_voice_menu(
        self, interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        await self._speak_message(interaction, message, "voice")

    async def _speak_message(self, interaction: discord.Interaction[Any], message: discord.Message,
                             kind: str) -> None:
        """Speak another message's text with the invoker's defaults (the built-in voice and
        the default tuning), through the same quotas, card and delivery as /speak."""
        if not message.content.strip():
            await interaction.response.send_message(
                "That message has no text to speak (only attachments, embeds or stickers).", ephemeral=True
            )
            return
        author = discord.utils.escape_markdown(message.author.display_name)
        note = f"(Speaking a message by {author}.)"
        saved = None
        defaults = TTSParams()
        params = (defaults.exaggeration, defaults.temperature, defaults.cfg)
        if interaction.guild_id is not None:  # the member's /voices default voice and tuning
            chosen = await _voices.choose(self.bot, interaction.guild_id, interaction.user.id, voice=None,
                                          clip_given=False, exaggeration=None, temperature=None, cfg=None)
            saved, params = chosen.voice, (chosen.exaggeration, chosen.temperature, chosen.cfg)
            note = f"{note} {chosen.note}" if chosen.note else note
        await self._speak(interaction, SpeakRequest(
            text=message.content, kind=kind, params=params,
            names=GuildNames.for_message(interaction.guild, message), note=note, saved_voice=saved,
        ))

    # -- result buttons ---------------------------------------------------------------------

    async def reroll_clicked(self, interaction: discord.Interaction[Any], take_id: str) -> None:
        """A new paid take of the same text, voice and tuning; it replaces the cached one."""
        take = await self.bot.core.cache.get_take(take_id)
        if take is None:
            await interaction.response.send_message(
                "This result can't be re-rolled any more (it is too old, or its voice was deleted).",
                ephemeral=True,
            )
            return
        if interaction.user.id != take.user_id:
            await interaction.response.send_message(
                f"Only <@{take.user_id}> (who asked for it) can re-roll this.", ephemeral=True
            )
            return
        try:  # a saved voice's signed or re-hosted URL expires: make a fresh one instead
            saved = await _voices.voice_of_url(self.bot, interaction.guild_id, take.voice_url)
        except VoiceError as exc:
            await interaction.response.send_message(exc.user_message, ephemeral=True)
            return
        if saved is None and take.voice_url and _checks.link_expired(take.voice_url, self.bot.clock.now()):
            await interaction.response.send_message(
                "The voice clip's Discord link has expired; run /speak again with the clip.", ephemeral=True
            )
            return
        params = take.params
        await self._speak(interaction, SpeakRequest(
            text=take.text, kind="file", params=(params.exaggeration, params.temperature, params.cfg),
            names=GuildNames(interaction.guild), voice_url=take.voice_url, voice_name=take.voice_name,
            clip_sha256=take.clip_sha256, fresh=True, note="(Re-roll: a new take.)", saved_voice=saved,
        ))

    async def play_clicked(self, interaction: discord.Interaction[Any], take_id: str) -> None:
        """Play a result's audio in the clicker's voice channel, from the cache: free."""
        member = interaction.user
        channel = getattr(getattr(member, "voice", None), "channel", None)
        if not isinstance(member, discord.Member) or channel is None:
            await interaction.response.send_message("Join a voice channel first, then press Play in voice.",
                                                    ephemeral=True)
            return
        voice = self.bot.voice_output
        if voice is None:
            await interaction.response.send_message("Voice chat is not available right now.", ephemeral=True)
            return
        take = await self.bot.core.cache.get_take(take_id)
        audio = await self.bot.core.cache.take_audio(take) if take is not None else None
        if take is None or audio is None:
            await interaction.response.send_message(
                "That audio is no longer in the cache, so it can't be replayed for free; "
                "whoever asked for it can Re-roll it.", ephemeral=True,
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._play_take(interaction, member, take, audio)

    async def _play_take(self, interaction: discord.Interaction[Any], member: discord.Member, take: Take,
                         audio: list[bytes]) -> None:
        async def tell(text: str) -> None:
            try:
                await interaction.followup.send(text, ephemeral=True)
            except discord.HTTPException as exc:
                log.info("could not tell %s about their replay: %s", member.id, exc)

        async def fell_back(reason: str) -> None:
            await tell(f"The replay stopped: {reason.rstrip('.')}.")

        clip = VoiceClip(job_id=f"replay-{take.id}-{interaction.id}", requester_id=member.id,
                         requester_name=member.display_name, label=take.text[:40],
                         text_channel_id=interaction.channel_id, fallback=fell_back)
        for chunk in audio:
            clip.push(chunk)
        clip.finish()
        voice = self.bot.voice_output
        assert voice is not None
        try:
            placement = await voice.enqueue(member, clip)
        except Exception:
            log.exception("the voice player failed to take a replay of %s", take.id)
            await tell("The voice player had an error; please try again.")
            return
        if placement.kind == "refused":
            reason = (placement.reason or "voice playback was refused").rstrip(".")
            await tell(f"I can't play it in voice: {reason}.")
        elif placement.kind == "queued":
            await tell(f"Queued in voice (position {placement.position}); from cache, free.")
        else:
            await tell("Playing it in your voice channel; from cache, free.")

    # -- Cancel -----------------------------------------------------------------------------

    async def cancel_clicked(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        session = self.sessions.get(job_id)
        if session is None or session.job is None or session.finished.is_set():
            await interaction.response.send_message("This job is no longer running.", ephemeral=True)
            return
        is_mod = interaction.permissions.manage_guild
        if interaction.user.id != session.requester_id and not is_mod:
            await interaction.response.send_message(
                f"Only <@{session.requester_id}> (who asked) or a moderator with Manage Server can "
                "cancel this job.",
                ephemeral=True,
            )
            return
        await interaction.response.defer()  # the card itself shows "cancelled"
        if not await session.job.cancel():
            await interaction.followup.send("Too late: the job had already finished.", ephemeral=True)

    # -- restart ----------------------------------------------------------------------------

    async def _resume(self) -> int:
        """Once the bot is connected (channels cached), take over what the last run left."""
        await self.bot.wait_until_ready()
        # The reconciler first, so jobs abandoned while this pass waits are taken over too; its
        # own first pass comes a period later (this one has claimed what was left by then).
        self.bot.core.speech.start_reconciler(self.deliver_resumed, on_failed=self.close_failed_resumed,
                                              first_pass=False)
        try:
            # wait=True: the task ends once every resumed job is delivered (tests await it).
            taken = await self.bot.core.speech.resume_pending(
                self.deliver_resumed, wait=True, on_failed=self.close_failed_resumed
            )
        except Exception:
            log.exception("could not resume pending speech jobs")
            taken = 0
        return taken

    async def _resumed_channel(self, job: ResumedJob) -> Any | None:
        """The channel a resumed job belongs to, or None (logged) when it is gone."""
        channel_id = job.channel_id
        if channel_id is None:
            log.warning("resumed job %s has no channel", job.job_id)
            return None
        try:
            return self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
        except discord.HTTPException as exc:
            log.warning("resumed job %s: channel %s is gone (%s)", job.job_id, channel_id, exc)
            return None

    async def close_failed_resumed(self, job: ResumedJob, message: str) -> None:
        """A resumed job ended without audio: its old card says so, without a Cancel button."""
        log.info("resumed job %s failed (%s): %s", job.job_id,
                 "refunded" if job.refunded else "charged", message)
        card_id = job.target.card_message_id
        channel = await self._resumed_channel(job) if card_id else None
        if channel is None:
            return
        params = job.params
        card = _card.Card(
            requester=f"<@{job.user_id}>", text=job.text,
            output=job.target.kind, exaggeration=params.exaggeration,
            temperature=params.temperature, cfg=params.cfg,
            voice_name=await _voices.voice_name_of(self.bot, job.voice_url),
            status=_card.status_failed(job.job_id),
            # Whether it was charged is the requester's business, and after a restart there is
            # no private way back to them: /quota me shows it to them alone.
            note="(Closed after a restart; `/quota me` shows your quota as it is now.)",
        )
        reply = Reply(clock=self.bot.clock, channel=channel, card_id=card_id)
        await _quietly(reply.edit_card(card.render(), view=None))

    async def _resumed_buttons(self, job: ResumedJob, result: SpeechResult,
                               guild_id: int | None) -> discord.ui.View | None:
        """Record a resumed job's take so its result has buttons too (None if that fails)."""
        try:
            chunks = self.bot.core.speech.plan(result.text).chunks
        except InvalidTTSRequest:
            chunks = (result.text,)
        try:
            await self.bot.core.cache.record_take(
                _resumed_take(job, result, guild_id, chunks, self.bot.clock.now(),
                              await _voices.voice_name_of(self.bot, job.voice_url)))
        except Exception:
            log.exception("could not record the take of resumed job %s", job.job_id)
            return None
        return result_view(job.job_id)

    async def deliver_resumed(self, job: ResumedJob, result: SpeechResult) -> None:
        """Post a resumed job's audio by channel message (the old token may be dead)."""
        channel = await self._resumed_channel(job)
        if channel is None:
            return  # not deliverable anywhere: marked delivered, nothing to retry
        channel_id = channel.id
        guild = getattr(channel, "guild", None)
        limit = guild.filesize_limit if guild is not None else 10 * 1024 * 1024
        reply = Reply(clock=self.bot.clock, channel=channel, card_id=job.target.card_message_id)
        voice_name = await _voices.voice_name_of(self.bot, job.voice_url)
        try:
            upload = await fit_upload(result.audio, limit_bytes=limit, ffmpeg=self.bot.ffmpeg,
                                      base_name=result.text)
        except (TooLargeForUpload, AudioError) as exc:
            # The detail may quote FFmpeg: the log keeps it under the error id, the member reads
            # plain words.
            log.warning("resumed job %s (error id %s): the audio can't be posted: %s",
                        job.job_id, _card.error_id(job.job_id), exc)
            await _quietly(reply.post(f"<@{job.user_id}>: your /speak audio was made but can't be posted: "
                                      f"{exc.user_message} (error id `{_card.error_id(job.job_id)}`)"))
            return
        content = _card.audio_message(
            requester=f"<@{job.user_id}>", text=result.text, duration=result.duration,
            exaggeration=result.exaggeration, temperature=result.temperature, cfg=result.cfg,
            voice_name=voice_name,
            note=" ".join(n for n in (upload.note, "(Delivered after a restart.)") if n),
        )
        view = await self._resumed_buttons(job, result, guild.id if guild is not None else None)
        try:
            await reply.post(content, data=upload.data, filename=upload.filename, view=view)
        except (discord.Forbidden, discord.NotFound) as exc:
            log.warning("resumed job %s: cannot post in channel %s (%s)", job.job_id, channel_id, exc)
            return
        card = _card.Card(
            requester=f"<@{job.user_id}>", text=job.text, output=job.target.kind,
            exaggeration=result.exaggeration, temperature=result.temperature, cfg=result.cfg,
            voice_name=voice_name,
            status=_card.status_done(result.duration, where="posted below after a restart"),
        )
        await _quietly(reply.edit_card(card.render(), view=None))


def _resumed_take(job: ResumedJob, result: SpeechResult, guild_id: int | None, chunks: tuple[str, ...],
                  now: datetime, voice_name: str | None) -> Take:
    """A resumed job's take: enough for Re-roll (its chunks' audio was never cached here, and
    its clip is known only by URL, so Play in voice says it is not cached)."""
    return Take(id=job.job_id, user_id=job.user_id, guild_id=guild_id, text=result.text, chunks=chunks,
                voice_url=job.voice_url, voice_name=voice_name, clip_sha256=None,
                params=job.params, model_id=None, created_at=now)


def _delivery_target(interaction: discord.Interaction[Any], kind: str, card_id: int | None) -> DeliveryTarget:
    """Where the job's audio goes, persisted with it so a restarted bot can still deliver.

    The interaction token is deliberately not persisted (see ``DeliveryTarget``): nothing reads
    it back, and a stored credential only widens who could see it.
    """
    voice_channel = getattr(getattr(interaction.user, "voice", None), "channel", None)
    return DeliveryTarget(
        kind=kind,  # type: ignore[arg-type]
        channel_id=interaction.channel_id,
        application_id=interaction.application_id,
        voice_channel_id=voice_channel.id if voice_channel is not None else None,
        card_message_id=card_id,
    )



def _refusal_text(exc: UserFacingError) -> str:
    if isinstance(exc, QuotaExceeded):
        return _card.quota_refusal(exc.user_message, exc.resets_at, exc.code)
    return exc.user_message


async def _quietly(coro: Any) -> None:
    try:
        await coro
    except discord.HTTPException as exc:
        log.info("Discord refused a /speak message: %s", exc)

