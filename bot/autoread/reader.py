"""``GuildReader``: one server's hands-free reading queue, from message to voice (no discord).

Decisions:

* **Round-robin between members.** Waiting reads sit in a ``FairQueue`` (the voice player's
  own): with messages a1 a2 a3 from Alice and b1 from Bob the reading order is a1 b1 a2 a3,
  so one talkative member never holds everyone else. At most ``MAX_WAITING_PER_MEMBER`` reads
  wait per member; beyond that a message is refused like a quota refusal (one note per hour).
* **Money is reserved at the read's turn, not at the message.** Only ``LOOKAHEAD`` reads per
  server are started at once (one playing, the next one generating), each through
  ``SpeechService.start`` — the same quota reservation as /speak (the member's limits and the
  server's budget), the same job rules. So a burst of 20 messages does not hit the member's
  "in flight" limit, an edit or a deletion of a waiting message costs nothing, and the quota
  is checked against what is really read. A cooldown refusal (``QUOTA_COOLDOWN_SECONDS``) does
  not drop the message: it is retried when the cooldown is over, so the cooldown paces a
  member's reads.
* **Order of playback.** A started read's clip is handed to the voice player as soon as the
  read before it is playing (the first one at once): the player's own queue then never holds
  two reads of this server, so it cannot reorder them, and the next read is generated while
  the current one plays. Playback starts with the first chunk (``VoiceClip`` streams), and
  the job's last chunk ends the clip, so the next read can start before the job's completion
  is even committed; the read is done (✅) once it was played *and* its job recorded as
  delivered, so a ✅ never stands on an open job.
* **Edits and deletions.** A waiting message that is edited is read with its new text; one
  that is deleted is dropped. A started read that is not playing yet is cancelled
  (``SpeechJob.cancel``: refunded when nothing was submitted) and, after an edit, started
  again with the new text in the same place. Deleting a message that is playing stops it.
* **The author's voice** is looked up at the read's turn (``bot.autoread.voices``): their
  default saved voice and tuning, as ``/speak`` would use them. When that voice cannot be
  used (deleted, revoked) the message is read in the built-in voice and the log says why.
* **Announcing** ("Alice said"): a second job in the bot's built-in voice, started after the
  message's own job was accepted; its audio goes first into the same clip while the message's
  chunks wait. The audio cache answers every later announcement of the same name for free.
  If it is refused or fails, the message is read without it.
* **Refusal notes** are throttled by ``NoteThrottle``: one per member per hour
  (``NOTE_INTERVAL``), however many messages are refused; the last reason is kept for
  ``/autoread me status``. ``Read.noted`` marks the one refusal to show (the cog shows ⚠️ on
  it, or a direct message when it may not react); the others end without a mark.
* **Reporting.** Every state change goes to the ``ReadOutlet`` (the cog turns it into a
  reaction); the outlet must not block (the cog queues reactions).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from bot.autoread.rules import IncomingMessage
from bot.autoread.voices import ReadVoice, VoiceLookup
from bot.clock import Clock
from bot.errors import UserFacingError
from bot.gateway.models import TTSParams
from bot.playback.clip import VoiceClip
from bot.playback.queue import FairQueue, Placement, QueueFull
from bot.quotas.errors import QuotaExceeded
from bot.speech.events import Cancelled, ChunkReady, Completed, DeliveryTarget, Failed, Requester, SpeechEvent

if TYPE_CHECKING:
    from bot.speech.service import SpeechJob, SpeechService

log = logging.getLogger(__name__)

LOOKAHEAD = 2
MAX_WAITING_PER_MEMBER = 20
NOTE_INTERVAL = 3600.0
FINISHED_KEPT = 100
#: Quota refusals that only mean "not yet": the read waits and is retried.
WAIT_CODES = frozenset({"cooldown", "max_in_flight"})


class ReadState(StrEnum):
    QUEUED = "queued"
    PLAYING = "playing"
    DONE = "done"
    REFUSED = "refused"
    ENDED = "ended"  # skipped, stopped, cancelled, edited away or deleted: no mark left


@dataclass(eq=False)
class Attempt:
    """One speech job for a read (an edit starts a new one)."""

    job: SpeechJob | None
    clip: VoiceClip
    text: str = ""
    handed: bool = False
    #: The "<name> said" job, played first; the message's chunks wait in ``held`` meanwhile.
    announce_job: SpeechJob | None = None
    announcing: bool = False
    held: list[bytes] = field(default_factory=list)
    message_complete: bool = False
    #: The clip was played to its end / the job's end was recorded (``mark_delivered``): the
    #: read is done (✅) once both are true, so a ✅ never stands on a job still open.
    played: bool = False
    recorded: bool = False

    def push(self, audio: bytes, *, last: bool = False) -> None:
        """One chunk of the message; ``last`` completes it (see ``VoiceClip.push``)."""
        if self.announcing:
            self.held.append(audio)
            self.message_complete = self.message_complete or last
        else:
            self.clip.push(audio, last=last)
            self.message_complete = self.message_complete or last

    def complete(self) -> None:
        self.message_complete = True
        if not self.announcing:
            self.clip.finish()

    def announced(self) -> None:
        """The announcement played its part (or could not): the message's audio follows."""
        if not self.announcing:
            return
        self.announcing = False
        held, self.held = self.held, []
        for n, audio in enumerate(held, 1):
            # The message's last chunk finishes the clip with it, as in ``push``.
            self.clip.push(audio, last=self.message_complete and n == len(held))
        if self.message_complete and not held:
            self.clip.finish()


@dataclass(eq=False)
class Read:
    """One message on its way to voice."""

    message: IncomingMessage
    text: str
    #: "<name> said", spoken first in the bot's voice (None: the server does not announce).
    announce: str | None = None
    state: ReadState = ReadState.QUEUED
    attempt: Attempt | None = None
    #: Why it was refused or failed (shown in ``/autoread me status``).
    reason: str | None = None
    #: Whether the refusal is shown (the first for this member in ``NOTE_INTERVAL``).
    noted: bool = False
    retry_at: float | None = None
    #: The message was deleted (nothing more is shown on it).
    deleted: bool = False
    #: Every text it was to be read as (an edit appends), and every attempt made, in order.
    texts: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def member_id(self) -> int:
        return self.message.author_id


class ReadOutlet(Protocol):
    """The Discord side: put a clip in voice, show a read's state (must not block)."""

    async def enqueue(self, read: Read, clip: VoiceClip) -> Placement: ...

    def show(self, read: Read, previous: ReadState | None) -> None: ...


class NoteThrottle:
    """At most one refusal note per member per ``interval`` seconds of the clock."""

    def __init__(self, clock: Clock, interval: float = NOTE_INTERVAL) -> None:
        self._clock = clock
        self._interval = interval
        self._last: dict[tuple[int, int], float] = {}
        self.last_reason: dict[tuple[int, int], str] = {}

    def first(self, guild_id: int, user_id: int, reason: str) -> bool:
        key = (guild_id, user_id)
        self.last_reason[key] = reason
        now = self._clock.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        self._last[key] = now
        return True


class GuildReader:
    """One server's reader; see the module docstring."""

    def __init__(
        self,
        guild_id: int,
        *,
        speech: SpeechService,
        outlet: ReadOutlet,
        voices: VoiceLookup,
        clock: Clock,
        throttle: NoteThrottle,
        lookahead: int = LOOKAHEAD,
    ) -> None:
        self.guild_id = guild_id
        self._speech = speech
        self._outlet = outlet
        self._voices = voices
        self._clock = clock
        self._throttle = throttle
        self._lookahead = lookahead
        self.queue: FairQueue[Read] = FairQueue(MAX_WAITING_PER_MEMBER)
        self.active: list[Read] = []
        self.by_message: dict[int, Read] = {}
        #: The last ``FINISHED_KEPT`` reads this reader finished, in the order they ended (for
        #: observers and tests; bounded so a long-running bot does not keep every message).
        self.finished: deque[Read] = deque(maxlen=FINISHED_KEPT)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()
        self._closed = False

    # -- entry points -------------------------------------------------------------------

    def add(self, message: IncomingMessage, text: str, *, announce: str | None = None) -> Read | None:
        """Queue ``message`` to be read as ``text`` (after ``announce``, if given); None if it
        was refused (queue full). Call ``pump`` afterwards to start it."""
        read = Read(message, text, announce=announce, texts=[text])
        try:
            self.queue.add(message.author_id, read)
        except QueueFull as exc:
            self._refuse(read, f"you already have {exc.cap} messages waiting to be read")
            return None
        self.by_message[message.message_id] = read
        self._show(read, None)
        return read

    async def edit(self, message_id: int, text: str) -> None:
        """The message was edited: read ``text`` instead, if it is not playing yet ("" drops it)."""
        read = self.by_message.get(message_id)
        if read is None or read.state is not ReadState.QUEUED or text == read.text:
            return
        async with self._lock:
            if read.state is not ReadState.QUEUED:
                return  # it started playing (or ended) while this edit waited for the lock
            if read in self.queue:
                if not text:
                    self.queue.remove(read)
                    self._end(read, ReadState.ENDED)
                else:
                    read.text = text
                    read.texts.append(text)
                return
            if read not in self.active:
                return
            attempt, read.attempt = read.attempt, None
            await self._stop(attempt, "the message was edited")
            if not text:
                self._drop_active(read)
                self._end(read, ReadState.ENDED)
            else:
                read.text = text
                read.texts.append(text)
                await self._start(read)
            await self._handoff()

    async def delete(self, message_id: int) -> None:
        """The message was deleted: drop it (refunded when nothing was sent), or stop it."""
        read = self.by_message.get(message_id)
        if read is None:
            return
        read.deleted = True
        async with self._lock:
            if read in self.queue:
                self.queue.remove(read)
            attempt, read.attempt = read.attempt, None
            await self._stop(attempt, "the message was deleted")
            if read in self.active:
                self.active.remove(read)
            if read.state in (ReadState.QUEUED, ReadState.PLAYING):
                self._end(read, ReadState.ENDED)
        self._spawn(self.pump())

    async def pump(self) -> None:
        """Start reads while there is room in the look-ahead, then hand clips to voice."""
        if self._closed:
            return
        async with self._lock:
            now = self._clock.monotonic()
            for read in [r for r in self.active if r.attempt is None and r.retry_at is not None]:
                if read.retry_at is not None and read.retry_at <= now:
                    read.retry_at = None
                    await self._start(read)
            while len(self.active) < self._lookahead:
                read = self.queue.pop_next()
                if read is None:
                    break
                self.active.append(read)
                await self._start(read)
            await self._handoff()

    async def wait_until(self, predicate: Any) -> Any:
        """``predicate()`` once truthy, re-checked after every change (for tests; add a timeout)."""
        while not (value := predicate()):
            await self._changed.wait()
        return value

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- starting -----------------------------------------------------------------------

    async def _start(self, read: Read) -> None:
        """Reserve and start the read's job (call with the lock held, the read in ``active``)."""
        message = read.message
        clip = VoiceClip(
            job_id="",
            requester_id=message.author_id,
            requester_name=message.author_name,
            label=read.text[:40],
            text_channel_id=message.channel_id,
        )
        attempt = Attempt(None, clip, read.text)
        read.attempts.append(attempt)
        clip.on_state = lambda text: self._on_voice_state(read, attempt, text)
        clip.fallback = lambda reason: self._on_voice_fallback(read, attempt, reason)
        read.attempt = attempt
        voice = await self._voice(message)
        try:
            job = await self._speech.start(
                Requester(message.author_id, message.author_name, message.guild_id, message.role_ids),
                read.text,
                voice_url=voice.voice_url,
                params=voice.params,
                target=DeliveryTarget(kind="voice", channel_id=message.channel_id),
                on_event=lambda event: self._on_event(read, attempt, event),
                clip_sha256=voice.clip_sha256,
                voice_name=voice.name,
            )
        except QuotaExceeded as exc:
            read.attempt = None
            if exc.code in WAIT_CODES:
                self._wait(read, exc)
                return
            self._drop_active(read)
            self._refuse(read, exc.user_message)
            return
        except UserFacingError as exc:
            read.attempt = None
            self._drop_active(read)
            self._refuse(read, exc.user_message)
            return
        except Exception:
            read.attempt = None
            log.exception("could not start reading message %s", message.message_id)
            self._drop_active(read)
            self._refuse(read, "something went wrong on our side")
            return
        attempt.job = job
        clip.job_id = job.job_id
        if read.announce:
            await self._start_announcement(read, attempt)
        log.info("reading message %s of user %s as job %s", message.message_id, message.author_id, job.job_id)

    async def _voice(self, message: IncomingMessage) -> ReadVoice:
        """The author's voice for this read; the built-in one (logged) when theirs cannot be
        used or the lookup fails: a voice problem never drops the message."""
        try:
            voice = await self._voices(message.guild_id, message.author_id)
        except Exception:
            log.exception(
                "could not look up the voice of user %s; message %s is read in the built-in voice",
                message.author_id, message.message_id,
            )
            return ReadVoice()
        if voice.problem is not None:
            log.info(
                "message %s of user %s is read in the built-in voice: %s",
                message.message_id, message.author_id, voice.problem,
            )
        return voice

    async def _start_announcement(self, read: Read, attempt: Attempt) -> None:
        """Start "<name> said" in the bot's voice, after the message itself was accepted (the
        message has the first claim on the member's quota). Refused or failed: the message is
        read without it. Cached after the first time, so it costs once per name."""
        assert read.announce is not None
        message = read.message
        attempt.announcing = True
        try:
            attempt.announce_job = await self._speech.start(
                Requester(message.author_id, message.author_name, message.guild_id, message.role_ids),
                read.announce,
                voice_url=None,
                params=TTSParams(),
                target=DeliveryTarget(kind="voice", channel_id=message.channel_id),
                on_event=lambda event: self._on_announce_event(read, attempt, event),
            )
        except Exception as exc:
            log.info("message %s is read without its announcement: %s", message.message_id, exc)
            attempt.announced()

    def _wait(self, read: Read, exc: QuotaExceeded) -> None:
        """A "not yet" refusal: keep the read's place and retry later."""
        delay = 1.0
        if exc.resets_at is not None:
            delay = max(0.05, (exc.resets_at - self._clock.now()).total_seconds())
        read.retry_at = self._clock.monotonic() + delay
        log.info("message %s waits %.1f s (%s)", read.message.message_id, delay, exc.code)

        async def retry() -> None:
            await self._clock.sleep(delay)
            await self.pump()

        self._spawn(retry())

    async def _handoff(self) -> None:
        """Give clips to voice in order: each once the read before it is playing."""
        for index, read in enumerate(self.active):
            attempt = read.attempt
            if attempt is None:
                return  # waiting for a retry: nothing after it goes first
            if attempt.handed:
                continue
            if index > 0 and self.active[index - 1].state is not ReadState.PLAYING:
                return
            attempt.handed = True
            try:
                placement = await self._outlet.enqueue(read, attempt.clip)
            except Exception:
                log.exception("the voice player failed to take message %s", read.message.message_id)
                placement = Placement.refused("the voice player had an error")
            if placement.kind == "refused":
                read.attempt = None
                await self._stop(attempt, placement.reason or "voice refused")
                self._drop_active(read)
                self._refuse(read, placement.reason or "voice playback was refused")
                return

    async def _stop(self, attempt: Attempt | None, reason: str) -> None:
        if attempt is None:
            return
        attempt.clip.abort(reason)
        for job in (attempt.job, attempt.announce_job):
            if job is not None and not job.done():
                await job.cancel()

    # -- events ---------------------------------------------------------------------------

    async def _on_event(self, read: Read, attempt: Attempt, event: SpeechEvent) -> None:
        if attempt.played:
            # Heard already (the last chunk ends the clip before the job's completion is
            # committed): record the delivery, then the read is done.
            if isinstance(event, Completed):
                await self._record(event)
            if isinstance(event, Completed | Failed | Cancelled):
                attempt.recorded = True
                self._played(read)
            return
        if read.attempt is not attempt:
            return  # an attempt replaced by an edit, or the message was deleted
        if isinstance(event, ChunkReady):
            # The last chunk ends the clip with it, not a commit later (no "next chunk is
            # late" pause padding the gap before the next message).
            attempt.push(event.audio, last=event.index + 1 >= event.chunks)
        elif isinstance(event, Completed):
            attempt.complete()
            await self._record(event)
            attempt.recorded = True
            if attempt.played:
                self._played(read)  # it finished playing while the delivery was recorded
        elif isinstance(event, Failed):
            read.attempt = None
            await self._stop(attempt, event.user_message)
            self._drop_active(read)
            self._refuse(read, event.user_message)
        elif isinstance(event, Cancelled):
            attempt.clip.abort("cancelled")

    async def _record(self, event: Completed) -> None:
        try:
            await self._speech.mark_delivered(event.result.job_id)
        except Exception:
            log.exception("could not mark job %s delivered", event.result.job_id)

    def _played(self, read: Read) -> None:
        if read.state is ReadState.PLAYING:
            self._end(read, ReadState.DONE)

    async def _on_announce_event(self, read: Read, attempt: Attempt, event: SpeechEvent) -> None:
        if read.attempt is not attempt:
            return
        if isinstance(event, ChunkReady) and attempt.announcing:
            attempt.clip.push(event.audio)
            if event.index + 1 >= event.chunks:
                attempt.announced()
        elif isinstance(event, Completed):
            attempt.announced()
            try:
                await self._speech.mark_delivered(event.result.job_id)
            except Exception:
                log.exception("could not mark job %s delivered", event.result.job_id)
        elif isinstance(event, Failed | Cancelled):
            attempt.announced()  # the message is read without it

    async def _on_voice_state(self, read: Read, attempt: Attempt, text: str) -> None:
        if read.attempt is not attempt:
            return
        if text.startswith("playing in"):
            previous, read.state = read.state, ReadState.PLAYING
            self._show(read, previous)
            self._spawn(self.pump())  # the next read may go to voice now
        elif text.startswith("played in"):
            read.attempt = None
            attempt.played = True
            self._drop_active(read)  # the next read goes on at once; ✅ waits for the record
            if attempt.recorded or attempt.job is None:
                self._played(read)
        elif not text.startswith("queued"):
            read.attempt = None  # skipped, stopped, removed from the queue
            self._drop_active(read)
            self._end(read, ReadState.ENDED)

    async def _on_voice_fallback(self, read: Read, attempt: Attempt, reason: str) -> None:
        if read.attempt is not attempt:
            return
        read.attempt = None
        if attempt.job is not None and not attempt.job.done():
            self._spawn(attempt.job.cancel())
        self._drop_active(read)
        self._refuse(read, reason)

    # -- ending ---------------------------------------------------------------------------

    def _refuse(self, read: Read, reason: str) -> None:
        read.reason = reason
        read.noted = self._throttle.first(self.guild_id, read.member_id, reason)
        self._end(read, ReadState.REFUSED)

    def _end(self, read: Read, state: ReadState) -> None:
        previous, read.state = read.state, state
        self.by_message.pop(read.message.message_id, None)
        self.finished.append(read)
        self._show(read, previous)

    def _drop_active(self, read: Read) -> None:
        if read in self.active:
            self.active.remove(read)
            self._spawn(self.pump())

    def _show(self, read: Read, previous: ReadState | None) -> None:
        try:
            self._outlet.show(read, previous)
        except Exception:
            log.exception("could not show the state of message %s", read.message.message_id)
        self._changed.set()
        self._changed = asyncio.Event()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.create_task(coro, name=f"autoread-{self.guild_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
