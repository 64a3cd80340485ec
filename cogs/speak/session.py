"""One /speak job on the Discord side: its card, its events, its audio, its voice clip.

``SpeakSession.on_event`` is the listener the speech service calls with the job's events, one
at a time and in order (``bot.speech.progress``). The session turns each into a card state and
edits the card; on ``Completed`` it delivers (file and/or voice) and then marks the job
delivered, so a restart does not deliver it again.

Decisions:

- Edits are throttled: the first state of each kind (quota ok → queued → processing → done)
  is shown at once; a kind shown before — a repeat ("processing… 4 s"), or a return to it
  (a long text alternates "waiting", "queued (2/5 parts sent)" and "processing" for each
  part) — at most every ``EDIT_INTERVAL`` seconds of the bot's clock, the latest state
  following when the interval is over. So a job makes a bounded number of quick edits,
  well inside Discord's rate limit for webhook edits (5 per ~2 s per token).
- A failure to edit or post is logged and never fails the job: the job's money is settled by
  the service, not by whether Discord took a message.
- ``output`` voice_message: the audio goes out as a Discord voice message
  (``cogs.speak.voice_message``); where Discord refuses it, as a file with the reason. A
  voice message carries nothing else, so its result buttons go on the final card (as for
  voice-only output); otherwise they sit on the audio message.
- A request served from the audio cache reads "from cache" instead of the quota line (that it
  was free is in the requester's private cost note, like every price).
- Voice (``output`` voice/both) goes through the Voice cog's ``enqueue`` (its contract is in
  ``cogs/voice.py``: ``VoiceClip``, ``Placement``). Chunks that arrive before the clip is
  placed are buffered and pushed in order. When voice is refused, unavailable or fails later,
  the file is posted instead with the reason, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord

from bot.audio import AudioError, TooLargeForUpload, fit_upload
from bot.playback.clip import VoiceClip
from bot.speech.events import (
    Cancelled,
    CatchingUp,
    ChunkReady,
    Completed,
    Failed,
    Processing,
    QuotaReserved,
    SpeechEvent,
    SpeechResult,
    Submitted,
    WaitingForSlot,
)
from cogs.common.alerts import alert_moderators
from cogs.speak import card as _card
from cogs.speak.reply import Reply
from cogs.speak.voice_message import VoiceMessageRefused, post_voice_message

if TYPE_CHECKING:
    from bot.app import ChatterboxBot
    from bot.speech.service import SpeechJob

log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.5

ViewFactory = Callable[[str], discord.ui.View]


class SpeakSession:
    def __init__(
        self,
        *,
        bot: ChatterboxBot,
        reply: Reply,
        card: _card.Card,
        requester_id: int,
        requester_name: str,
        guild_id: int | None,
        output: str,
        upload_limit: int,
        make_view: ViewFactory,
        on_finished: Callable[[SpeakSession], None] | None = None,
        make_result_view: ViewFactory | None = None,
    ) -> None:
        self.bot = bot
        self.reply = reply
        self.card = card
        self.requester_id = requester_id
        self.requester_name = requester_name
        self.guild_id = guild_id
        self.output = output
        self.upload_limit = upload_limit
        self.job_id: str | None = None
        self.job: SpeechJob | None = None  # once start() returned
        self._make_view = make_view
        self._make_result_view = make_result_view
        #: The result's buttons go on the final card (no file message carries them).
        self._buttons_on_card = False
        self._on_finished = on_finished
        self.finished = asyncio.Event()
        self._edit_lock = asyncio.Lock()
        self._last_kind: str | None = None
        self._kinds_shown: set[str] = set()
        self._held_back = False  # a state changed after the last edit and waits for the flush
        self._closed = False
        self._last_edit = float("-inf")
        self._flush: asyncio.Task[None] | None = None
        self._card_shown = False
        # voice
        self._clip: VoiceClip | None = None
        self._voice_wanted = output in ("voice", "both")
        self._chunks: list[bytes] = []
        #: The job's last chunk has arrived: the clip has all its audio (``finish`` is due).
        self._all_chunks = False
        self._result: SpeechResult | None = None
        self._terminal: str | None = None
        self._fallback_reason: str | None = None
        self._delivery_deferred = False
        self._file_posted = False

    # -- wiring -----------------------------------------------------------------------------

    def attach(self, job: Any) -> None:
        """``start`` returned the job handle (events may have started already)."""
        self.job = job
        self.job_id = job.job_id

    @property
    def posts_file(self) -> bool:
        return self.output in ("file", "both", "voice_message") or self._fallback_reason is not None

    def _result_buttons(self) -> discord.ui.View | None:
        if self._make_result_view is None or self._result is None:
            return None
        return self._make_result_view(self._result.job_id)

    # -- card -------------------------------------------------------------------------------

    async def show(self, kind: str, *, final: bool = False) -> None:
        """Edit the card; a ``kind`` shown before is throttled (the latest state then follows
        when the interval is over), a new kind or the final state goes out at once."""
        async with self._edit_lock:
            now = self.bot.clock.monotonic()
            wait = EDIT_INTERVAL - (now - self._last_edit)
            if kind in self._kinds_shown and not final and wait > 0:
                self._last_kind = kind
                self._held_back = True
                if not self._closed and (self._flush is None or self._flush.done()):
                    self._flush = asyncio.create_task(self._flush_after(wait), name="speak-card-flush")
                return
            await self._edit(kind, final=final)

    async def close(self) -> None:
        """The bot is closing: stop the held-back edit and start no new one (the job itself
        is stopped by the speech service, and resumed at the next start)."""
        self._closed = True
        if self._flush is not None and not self._flush.done():
            self._flush.cancel()
            await asyncio.gather(self._flush, return_exceptions=True)

    async def _flush_after(self, delay: float) -> None:
        await self.bot.clock.sleep(delay)
        async with self._edit_lock:
            if self._terminal is None and self._held_back and self._last_kind is not None:
                await self._edit(self._last_kind, final=False)

    async def _edit(self, kind: str, *, final: bool) -> None:
        self._last_kind = kind
        self._kinds_shown.add(kind)
        self._held_back = False
        self._last_edit = self.bot.clock.monotonic()
        if final:
            view = self._result_buttons() if self._buttons_on_card else None
        else:
            view = None if self.job_id is None else self._make_view(self.job_id)
        try:
            await self.reply.edit_card(self.card.render(), view=view)
            self._card_shown = True
        except (discord.HTTPException, RuntimeError, OSError) as exc:
            log.warning("could not edit the /speak card of job %s: %s", self.job_id, exc)

    # -- events -----------------------------------------------------------------------------

    async def on_event(self, event: SpeechEvent) -> None:
        self.job_id = self.job_id or event.job_id
        card = self.card
        if isinstance(event, QuotaReserved):
            if event.plan.cached:
                card.status = _card.status_from_cache()
            else:
                card.status = _card.status_quota_ok(event.plan.requests, len(event.plan.from_cache))
            await self.show("quota")
            # The cost is the requester's business: privately, and only once the card exists
            # (the first follow-up after a "thinking" defer would replace the card).
            if self._card_shown:
                with contextlib.suppress(discord.HTTPException):
                    await self.reply.tell(_card.cost_note(event.plan.requests, event.plan.cost,
                                                          len(event.plan.from_cache)))
        elif isinstance(event, WaitingForSlot):
            card.status = _card.status_waiting(event.position)
            await self.show("waiting")
        elif isinstance(event, Submitted):
            card.status = _card.status_submitted(event.submitted_chunks, event.chunks)
            await self.show("submitted")
        elif isinstance(event, Processing):
            card.status = _card.status_processing(event.elapsed, event.done_chunks, event.chunks)
            await self.show("processing")
        elif isinstance(event, ChunkReady):
            self._push_chunk(event.audio, last=event.index + 1 >= event.chunks)
        elif isinstance(event, Completed):
            await self._completed(event.result)
        elif isinstance(event, Failed):
            await self._failed(event)
        elif isinstance(event, CatchingUp):
            # Still open: the reconciler finishes it and posts the audio in this channel.
            card.status = event.message
            self._end_voice(event.message)
            await self._finish()
        elif isinstance(event, Cancelled):
            card.status = _card.status_cancelled(event.refunded)
            self._end_voice("cancelled")
            await self._finish()

    async def _completed(self, result: SpeechResult) -> None:
        self._result = result
        if self.posts_file and not await self._begin_delivery(result.job_id):
            # Not ours to post (delivered already, taken over, or the bot is stopping: the next
            # process posts it): never posted twice. Voice alone claims nothing: what has not
            # played when the bot restarts is posted as a file then.
            return
        if self._clip is not None:
            self._clip.finish()
        where = None
        self._buttons_on_card = True
        if self.posts_file:
            where = await self._post_audio(result)
        self.card.status = _done(result, where)
        if self._clip is not None and not self._clip.done and not self._file_posted:
            # Still waiting or playing in voice: delivered once the player is done with it
            # (``_voice_settled``), so a restart before that posts the file instead.
            self._delivery_deferred = True
        elif not result.cached:
            # Recorded before the card says "done", so whoever sees "done" sees it delivered.
            await self._mark_delivered(result.job_id)
        await self._finish()

    async def _failed(self, event: Failed) -> None:
        self.card.status = _card.status_failed(event.job_id)
        self._end_voice(event.user_message)
        message = event.user_message
        if event.refunded and (await self.bot.core.wallet.state()).paused:
            # A 402 paused the wallet (refunded). The job's typed error is not awaited here:
            # the job waits for this listener to return. Moderators hear of it before the
            # card says "failed", and the member is told so only where it is true.
            told = await out_of_credit(self.bot, self.guild_id, self.requester_name)
            message = _card.out_of_credit_refusal(message, told)
        await self._finish()
        # The public card says "failed"; the reason and the money go to the requester, once.
        with contextlib.suppress(discord.HTTPException):
            await self.reply.tell(_card.failure_message(message, event.refunded, event.job_id))

    async def _finish(self) -> None:
        self._terminal = self.card.status
        if self._flush is not None and not self._flush.done():
            self._flush.cancel()  # the final edit below shows the latest state anyway
        await self.show("final", final=True)
        self.finished.set()
        if self._on_finished is not None:
            self._on_finished(self)

    async def _begin_delivery(self, job_id: str) -> bool:
        try:
            return await self.bot.core.speech.begin_delivery(job_id)
        except Exception:
            log.exception("could not claim the delivery of job %s; the reconciler delivers it", job_id)
            return False

    async def _mark_delivered(self, job_id: str) -> None:
        try:
            await self.bot.core.speech.mark_delivered(job_id)
        except Exception:
            log.exception("could not mark job %s delivered", job_id)

    # -- files ------------------------------------------------------------------------------

    async def _post_audio(self, result: SpeechResult) -> str:
        """Post the audio as a file; returns what the card says about it."""
        if self._file_posted:
            return "posted below"
        self._file_posted = True
        if not self._card_shown:
            # The first follow-up after a "thinking" defer would replace it: the card must
            # exist first, so this edit is never held back by the throttle.
            async with self._edit_lock:
                await self._edit(self._last_kind or "quota", final=False)
        refused = None
        if self.output == "voice_message" and self._fallback_reason is None:
            refused = await self._post_voice_message(result)
            if refused is None:
                return "posted below as a voice message"
        try:
            upload = await fit_upload(
                result.audio, limit_bytes=self.upload_limit, ffmpeg=self.bot.ffmpeg, base_name=result.text
            )
        except TooLargeForUpload as exc:
            log.info("job %s: %s", result.job_id, exc)
            return f"but it cannot be posted: {exc.user_message}"
        except AudioError as exc:
            log.warning("could not prepare the audio of job %s: %s", result.job_id, exc)
            return f"but it could not be prepared for upload (error id `{_card.error_id(result.job_id)}`)"
        notes = [n for n in (upload.note, self._fallback_note(), refused) if n]
        content = _card.audio_message(
            requester=f"<@{self.requester_id}>",
            text=result.text,
            duration=result.duration,
            exaggeration=result.exaggeration,
            temperature=result.temperature,
            cfg=result.cfg,
            voice_name=self.card.voice_name,
            note=" ".join(notes),
        )
        buttons = self._result_buttons()
        try:
            await self.reply.post(content, data=upload.data, filename=upload.filename, view=buttons)
            self._buttons_on_card = buttons is None
        except discord.HTTPException as exc:
            log.warning("could not post the audio of job %s: %s", result.job_id, exc)
            return upload_refused(exc, result.job_id)
        return "posted below"

    async def _post_voice_message(self, result: SpeechResult) -> str | None:
        """Post the audio as a voice message; None when it went out, else the file's note."""
        channel_id = getattr(self.reply.channel, "id", None)
        if channel_id is None:
            return "(Posted as a file: this is not a channel for voice messages.)"
        try:
            await post_voice_message(self.bot, channel_id, result.audio)
        except VoiceMessageRefused as exc:
            return f"(Posted as a file: {exc.reason}.)"
        return None

    def _fallback_note(self) -> str:
        if self._fallback_reason is None:
            return ""
        if self._fallback_reason == _card.VOICE_UNAVAILABLE:
            return "(Voice output is not available; posted the file instead.)"
        return _card.voice_fallback_note(self._fallback_reason)

    # -- voice ------------------------------------------------------------------------------

    async def start_voice(self, member: discord.Member, label: str, text_channel_id: int | None) -> None:
        """Place the clip in the member's voice channel, or fall back to the file."""
        voice = self.bot.voice_output
        if voice is None:
            await self._voice_fallback(_card.VOICE_UNAVAILABLE)
            return
        clip = VoiceClip(
            job_id=self.job_id or "",
            requester_id=self.requester_id,
            requester_name=self.requester_name,
            label=label[:40],
            text_channel_id=text_channel_id,
            on_state=self._voice_state,
            fallback=self._voice_fallback,
            on_settled=self._voice_settled,
        )
        try:
            placement = await voice.enqueue(member, clip)
        except Exception:
            log.exception("the Voice cog failed to take job %s", self.job_id)
            await self._voice_fallback("the voice player had an error")
            return
        if placement.kind == "refused":
            await self._voice_fallback(placement.reason or "voice playback was refused")
            return
        # No await from here on: the buffered chunks and the terminal state are consistent.
        self._clip = clip
        for chunk in self._chunks:
            clip.push(chunk)
        self._chunks.clear()
        if self._terminal is not None and self._result is None:
            clip.abort(self._terminal)
        elif self._result is not None or self._all_chunks:
            clip.finish()

    def _push_chunk(self, audio: bytes, *, last: bool) -> None:
        # The last chunk finishes the clip at once rather than on ``Completed`` (which follows
        # a database commit): the player then ends the stream at the end of the audio instead
        # of padding it with a "next chunk is late" pause. A later failure still aborts it.
        self._all_chunks = self._all_chunks or last
        if self._clip is not None:
            self._clip.push(audio, last=last)
        elif self._voice_wanted and self._fallback_reason is None:
            self._chunks.append(audio)

    def _end_voice(self, reason: str) -> None:
        self._chunks.clear()
        if self._clip is not None:
            self._clip.abort(reason)

    async def _voice_state(self, text: str) -> None:
        self.card.voice = text
        await self.show(f"voice:{text}", final=self._terminal is not None)

    async def _voice_settled(self) -> None:
        """The voice player is done with the clip (played, skipped, cleared or posted)."""
        if self._delivery_deferred and self._result is not None:
            self._delivery_deferred = False
            await self._mark_delivered(self._result.job_id)

    async def _voice_fallback(self, reason: str) -> None:
        """Voice will not play this job: say why and post the file (now or on completion)."""
        if self._fallback_reason is not None:
            return
        self._fallback_reason = reason
        self._chunks.clear()
        if reason == _card.VOICE_UNAVAILABLE:
            self.card.voice = reason
        else:
            self.card.voice = _card.voice_fallback_note(reason)
        if self._result is not None and not self._file_posted:
            if not await self._begin_delivery(self._result.job_id):
                return  # taken over meanwhile: the new owner posts it
            where = await self._post_audio(self._result)
            self.card.status = _done(self._result, where)
        await self.show(f"voice-fallback:{reason}", final=self._terminal is not None)


def _done(result: SpeechResult, where: str | None) -> str:
    return _card.status_done(result.duration, where=where, cached=result.cached,
                             from_cache=result.cached_chunks, chunks=result.chunks)


#: Discord's JSON error codes for an upload it refused (not our fault, not a permission).
_TOO_LARGE_CODES = frozenset({40005})
_MISSING_PERMISSIONS = 50013


def upload_refused(exc: discord.HTTPException, job_id: str) -> str:
    """What the card says when Discord did not take the audio file: the cause when it is known."""
    if exc.status == 413 or exc.code in _TOO_LARGE_CODES:
        return "but it is too large for this server's upload limit"
    if exc.code == _MISSING_PERMISSIONS:
        return "but I am not allowed to post files here (I need Attach Files in this channel)"
    return f"but Discord did not take the file (error id `{_card.error_id(job_id)}`)"


async def out_of_credit(bot: ChatterboxBot, guild_id: int | None, requester_name: str) -> bool:
    """The bot-wide pause: tell every server's moderators once; True if this server's know.

    ``WalletGuard.claim_alert`` is True once per pause (across processes). Its winner posts
    in this server's alert channel first (awaited, so the member's "moderators have been told"
    is true), then in the alert channel of every other server this process serves; servers
    without an alert channel are skipped. The servers where the post went through are kept
    with the pause's epoch (``bot.credit_alert``), and afterwards a server's moderators count
    as told only when they are among them: not merely because an alert channel is set (the
    post may have failed, or the channel been chosen later, or another process posted).
    """
    try:
        wallet = bot.core.wallet
        if await wallet.claim_alert():
            epoch = (await wallet.state()).epoch
            text = _card.out_of_credit_alert(
                discord.utils.escape_markdown(requester_name), bot.settings.chatterbox_wallet_probe_seconds
            )
            told_here = guild_id is not None and await alert_moderators(bot, guild_id, text)
            others = [g.id for g in bot.guilds if g.id != guild_id]
            told = [g for g in others if await alert_moderators(bot, g, text, if_unset="skip")]
            bot.credit_alert = (epoch, frozenset(told + ([guild_id] if told_here and guild_id else [])))
            log.warning("out of credit: told the moderators of %d of %d servers", len(told) + told_here,
                        len(others) + (guild_id is not None))
            return told_here
        if guild_id is None or bot.credit_alert is None:
            return False
        epoch, told_guilds = bot.credit_alert
        return guild_id in told_guilds and (await wallet.state()).epoch == epoch
    except Exception:
        log.exception("could not alert the moderators about the out-of-credit pause")
        return False

