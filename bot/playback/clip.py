"""One /speak result on its way to a voice channel, fed chunk by chunk (Discord-free).

Design decisions:

* **One continuous PCM stream per clip.** Chunks arrive as separate WAVs; each is stripped
  to raw PCM (``bot.audio.wav_pcm``) and kept in order in a ``ClipAudio``. Playback reads the
  clip through a ``PcmReader`` that blocks until the next chunk arrives, so one FFmpeg
  process encodes the whole clip and playback starts with the first chunk instead of the
  last. Between chunks the reader inserts the same pause the file version gets
  (``CHATTERBOX_CHUNK_PAUSE_MS``), so voice and file sound alike. When the next chunk is
  late, that pause is sent at once (at least ``FLUSH_PAD_MS``): FFmpeg holds the last few
  tens of milliseconds of its input until more arrives, and the pause pushes the end of the
  chunk out to the listeners before the wait instead of after it. The job's last chunk is
  pushed with ``last=True``, which finishes the clip with it: the stream ends with the audio
  rather than a pause later, when the job's completion (a database commit) arrives.
* **Threads.** Chunks are added on the event loop; the reader runs in FFmpeg's pipe-writer
  thread. ``ClipAudio`` is guarded by one ``threading.Condition``; nothing here touches the
  loop. The audio is kept until the clip is dropped, so a reader can be opened more than once.
* **The first chunk fixes the format.** A later chunk in another format (never the case
  for Chatterbox, which always answers 24 kHz mono) or a chunk that is not PCM WAV marks the
  clip as failed with a reason; the player then posts the file instead.
* **Callbacks are the caller's.** ``on_state`` renders the job card, ``fallback`` posts the
  file; ``report``/``give_up`` call them safely (errors are logged, ``fallback`` runs at most
  once), so the player never dies on a failed card edit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.audio import AudioError, WavInfo, wav_pcm

log = logging.getLogger(__name__)

StateCallback = Callable[[str], Awaitable[None]]

#: Silence sent at the end of a chunk when the next one is late (at least the pause).
FLUSH_PAD_MS = 100


def _same_format(a: WavInfo, b: WavInfo) -> bool:
    return (a.sample_rate, a.channels, a.sample_width) == (b.sample_rate, b.channels, b.sample_width)


class ClipAudio:
    """A clip's PCM chunks, written on the loop and read from FFmpeg's pipe-writer thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._segments: list[bytes] = []
        self._frames = 0
        self.info: WavInfo | None = None
        self.finished = False
        self.aborted = False

    @property
    def chunks(self) -> int:
        return len(self._segments)

    @property
    def duration(self) -> float:
        """Seconds of audio received so far (without the pauses between chunks)."""
        return 0.0 if self.info is None else self._frames / self.info.sample_rate

    def add(self, wav: bytes, *, last: bool = False) -> None:
        """Append one chunk; ``AudioError`` if it is not PCM WAV or not in the first chunk's format.

        ``last`` also finishes the clip, under the same lock: a reader at the end of this
        chunk then ends the stream instead of padding it with the "next chunk is late" pause.
        """
        info, pcm = wav_pcm(wav)
        with self._cond:
            if self.finished or self.aborted:
                raise AudioError("The clip is already complete.")
            if self.info is None:
                self.info = info
            elif not _same_format(self.info, info):
                number = len(self._segments) + 1
                first = self.info.describe()
                raise AudioError(f"Chunk {number} is {info.describe()}, the first was {first}.")
            self._segments.append(pcm)
            self._frames += info.frames
            self.finished = last
            self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self.finished = True
            self._cond.notify_all()

    def abort(self) -> None:
        with self._cond:
            self.aborted = True
            self._cond.notify_all()

    def open(self, pause_ms: int) -> PcmReader:
        """A reader over the whole clip from its start; needs the first chunk (its format)."""
        if self.info is None:
            raise AudioError("The clip has no audio yet.")
        return PcmReader(self, pause_ms)


class PcmReader:
    """Blocking ``read`` over a ``ClipAudio``: returns data as soon as there is some, ``b""``
    at the end (finished, aborted or ``close``d). Meant for one thread."""

    def __init__(self, audio: ClipAudio, pause_ms: int) -> None:
        assert audio.info is not None
        info = audio.info
        self._audio = audio
        frame_bytes = info.channels * info.sample_width
        self._pause_bytes = round(info.sample_rate * max(0, pause_ms) / 1000) * frame_bytes
        flush_pad = round(info.sample_rate * FLUSH_PAD_MS / 1000) * frame_bytes
        self._flush_bytes = max(self._pause_bytes, flush_pad)
        self._paused_early = False
        # 8-bit PCM is unsigned: its silence is 0x80.
        self._silence = b"\x80" if info.sample_width == 1 else b"\x00"
        self._index = 0
        self._offset = 0
        self._pause_left = 0
        self._closed = False
        self.bytes_read = 0

    @property
    def audio(self) -> ClipAudio:
        return self._audio

    def close(self) -> None:
        """Make every current and future ``read`` return ``b""``."""
        with self._audio._cond:
            self._closed = True
            self._audio._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def read(self, size: int = 8192) -> bytes:
        size = max(1, size)
        audio = self._audio
        with audio._cond:
            while True:
                if self._closed or audio.aborted:
                    return b""
                data = self._next(size)
                if data is not None:
                    self.bytes_read += len(data)
                    return data
                if audio.finished:
                    return b""
                audio._cond.wait()

    def _next(self, size: int) -> bytes | None:
        """The next bytes available now, or None when the reader must wait (or is at the end)."""
        segments = self._audio._segments
        while self._index < len(segments):
            if self._pause_left:
                n = min(size, self._pause_left)
                self._pause_left -= n
                return self._silence * n
            segment = segments[self._index]
            if self._offset < len(segment):
                data = segment[self._offset : self._offset + size]
                self._offset += len(data)
                return data
            if self._index + 1 >= len(segments):
                if self._paused_early or self._audio.finished:
                    return None
                # The next chunk is late: send the pause now. It pushes the end of this
                # chunk through FFmpeg's buffers, so it is heard now, not after the wait.
                self._paused_early = True
                self._pause_left = self._flush_bytes
                continue
            self._index += 1
            self._offset = 0
            self._pause_left = 0 if self._paused_early else self._pause_bytes
            self._paused_early = False
        return None


@dataclass(eq=False)
class VoiceClip:
    """One /speak result on its way to a voice channel, fed chunk by chunk.

    ``push`` each chunk (a 24 kHz mono WAV) in order, then ``finish``; ``abort`` when the
    job failed or was cancelled (the clip is dropped, no file is posted by the player).
    ``on_state`` gets card texts ("playing in #Lounge", "queued (3rd)", ...); ``fallback`` is
    called at most once, with a reason that reads after "posted instead because …", when
    voice fails and the file should be posted instead. ``on_settled`` is called once when the
    player is done with the clip for good (played, skipped, stopped, cleared, or handed to
    ``fallback``), never when the bot shuts down with the clip still queued or playing: the
    producer records the job as delivered only then, so a restart posts what did not play.
    """

    job_id: str
    requester_id: int
    requester_name: str
    label: str
    text_channel_id: int | None = None
    on_state: StateCallback | None = None
    fallback: StateCallback | None = None
    on_settled: Callable[[], Awaitable[None]] | None = None
    audio: ClipAudio = field(default_factory=ClipAudio, init=False, repr=False)
    #: Why the pushed audio cannot be played (then the file is posted instead).
    failure: str | None = field(default=None, init=False)
    #: The reason given to ``abort``.
    aborted: str | None = field(default=None, init=False)
    fell_back: bool = field(default=False, init=False)
    #: ``settle`` was called.
    done: bool = field(default=False, init=False)
    _listeners: list[Callable[[VoiceClip], None]] = field(default_factory=list, init=False, repr=False)

    # -- the producer's side (the /speak cog) --------------------------------------------

    def push(self, wav: bytes, *, last: bool = False) -> None:
        """Add the next chunk (a PCM WAV); ``last`` finishes the clip with it (no ``finish``
        needed: the job's last chunk is the end of its audio even before the job completes).
        Ignored once the clip is aborted or failed."""
        if self.aborted is not None or self.failure is not None:
            return
        try:
            self.audio.add(wav, last=last)
        except AudioError as exc:
            log.warning("job %s: a chunk could not be streamed to voice chat: %s", self.job_id, exc)
            self.failure = "its audio could not be streamed"
            self.audio.abort()
        self._changed()

    def finish(self) -> None:
        """No more chunks."""
        self.audio.finish()
        self._changed()

    def abort(self, reason: str) -> None:
        """The job failed or was cancelled: stop and drop the clip."""
        if self.aborted is not None:
            return
        self.aborted = reason
        self.audio.abort()
        self._changed()

    # -- the player's side ---------------------------------------------------------------

    @property
    def has_audio(self) -> bool:
        return self.audio.chunks > 0

    @property
    def settled(self) -> bool:
        """The player can act on the clip: it has audio, failed, was aborted, or ended empty."""
        return (
            self.has_audio
            or self.failure is not None
            or self.aborted is not None
            or self.audio.finished
        )

    def subscribe(self, listener: Callable[[VoiceClip], None]) -> None:
        """Call ``listener(self)`` (on the loop, synchronously) after every push/finish/abort."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[VoiceClip], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener(self)

    async def report(self, text: str) -> None:
        """Show ``text`` on the job card; a failing callback is logged, never raised."""
        if self.on_state is None:
            return
        try:
            await self.on_state(text)
        except Exception:
            log.exception("job %s: could not show voice state %r", self.job_id, text)

    async def settle(self) -> None:
        """The player is done with the clip (see the class docstring); at most once."""
        if self.done:
            return
        self.done = True
        if self.on_settled is None:
            return
        try:
            await self.on_settled()
        except Exception:
            log.exception("job %s: the settled callback failed", self.job_id)

    async def give_up(self, reason: str) -> bool:
        """Ask the producer to post the file instead (at most once). True if this call did."""
        if self.fell_back or self.aborted is not None:
            return False
        self.fell_back = True
        log.info("job %s: voice playback replaced by the file: %s", self.job_id, reason)
        if self.fallback is None:
            return True
        try:
            await self.fallback(reason)
        except Exception:
            log.exception("job %s: the file fallback failed", self.job_id)
        return True
