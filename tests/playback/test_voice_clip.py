"""VoiceClip and its PCM stream: chunks in order, pauses, blocking reads, failures."""

from __future__ import annotations

import threading

import pytest

from bot.audio import wav_pcm
from bot.playback.clip import FLUSH_PAD_MS, VoiceClip
from tests.audio.wavs import speechlike_wav

RATE = 24_000


def read_all(reader, size: int = 1000) -> bytes:
    out = bytearray()
    while data := reader.read(size):
        out += data
    return bytes(out)


def pcm_of(wav: bytes) -> bytes:
    return wav_pcm(wav)[1]


def make_clip() -> tuple[VoiceClip, list[str]]:
    events: list[str] = []
    clip = VoiceClip(job_id="j1", requester_id=1, requester_name="alice", label="hi")
    clip.subscribe(lambda c: events.append("changed"))
    return clip, events


def test_chunks_become_one_stream_with_the_pause_between_them() -> None:
    first, second = speechlike_wav(0.5, seed=1), speechlike_wav(0.25, seed=2)
    clip, events = make_clip()
    clip.push(first)
    clip.push(second)
    clip.finish()
    assert events == ["changed"] * 3
    assert clip.has_audio and clip.settled and clip.audio.chunks == 2
    assert clip.audio.duration == pytest.approx(0.75)
    pause = bytes(2 * round(RATE * 0.2))
    assert read_all(clip.audio.open(200)) == pcm_of(first) + pause + pcm_of(second)
    # The audio stays, so a second reader starts from the beginning again.
    assert read_all(clip.audio.open(0)) == pcm_of(first) + pcm_of(second)


def test_a_late_chunk_gets_its_pause_early_and_only_once() -> None:
    first, second = speechlike_wav(0.3, seed=3), speechlike_wav(0.2, seed=4)
    clip, _ = make_clip()
    clip.push(first)
    reader = clip.audio.open(250)
    got = bytearray()
    expected_now = pcm_of(first) + bytes(2 * round(RATE * 0.25))
    while len(got) < len(expected_now):  # everything available now, without blocking
        got += reader.read(4096)
    assert bytes(got) == expected_now

    result: list[bytes] = []
    thread = threading.Thread(target=lambda: result.append(read_all(reader)))
    thread.start()  # blocks until the next chunk arrives
    clip.push(second)
    clip.finish()
    thread.join(5)
    assert result == [pcm_of(second)]


def test_the_last_chunk_ends_the_stream_without_a_late_pad() -> None:
    # The job's last chunk is the end of its audio even before the job completes (a database
    # commit later): a reader that gets there ends the stream, with no "next chunk is late" pad.
    first, second = speechlike_wav(0.3, seed=5), speechlike_wav(0.2, seed=6)
    clip, events = make_clip()
    clip.push(first)
    clip.push(second, last=True)
    assert clip.audio.finished and events == ["changed"] * 2
    reader = clip.audio.open(250)
    assert read_all(reader) == pcm_of(first) + bytes(2 * round(RATE * 0.25)) + pcm_of(second)
    clip.finish()  # the job's Completed still finishes it: harmless
    assert clip.audio.finished and not clip.failure


def test_a_reader_waiting_at_the_end_is_released_by_the_last_chunk() -> None:
    first, second = speechlike_wav(0.2, seed=7), speechlike_wav(0.2, seed=8)
    clip, _ = make_clip()
    clip.push(first)
    reader = clip.audio.open(0)
    pad = bytes(2 * round(RATE * FLUSH_PAD_MS / 1000))
    got = bytearray()
    while len(got) < len(pcm_of(first) + pad):
        got += reader.read(4096)
    result: list[bytes] = []
    thread = threading.Thread(target=lambda: result.append(read_all(reader)))
    thread.start()  # blocked: the second chunk is late
    clip.push(second, last=True)
    thread.join(5)
    assert not thread.is_alive()
    assert result == [pcm_of(second)]  # and nothing after it: the stream ended with the audio


def test_the_early_pad_is_at_least_the_flush_minimum() -> None:
    clip, _ = make_clip()
    clip.push(speechlike_wav(0.1))
    reader = clip.audio.open(0)
    pcm = pcm_of(speechlike_wav(0.1))
    want = pcm + bytes(2 * round(RATE * FLUSH_PAD_MS / 1000))
    got = bytearray()
    while len(got) < len(want):
        got += reader.read(4096)
    assert bytes(got) == want
    clip.finish()
    assert reader.read() == b""


def test_close_and_abort_wake_a_blocked_reader() -> None:
    for stop in ("close", "abort"):
        clip, _ = make_clip()
        clip.push(speechlike_wav(0.05))
        reader = clip.audio.open(0)
        available = len(pcm_of(speechlike_wav(0.05))) + 2 * round(RATE * FLUSH_PAD_MS / 1000)
        drained = threading.Event()
        result: list[bytes] = []

        def consume(reader=reader, result=result, drained=drained, available=available) -> None:
            got = 0
            while got < available:
                got += len(reader.read(4096))
            drained.set()
            result.append(reader.read())  # blocks: nothing more yet

        thread = threading.Thread(target=consume)
        thread.start()
        assert drained.wait(5)
        if stop == "close":
            reader.close()
        else:
            clip.abort("cancelled")
        thread.join(5)
        assert result == [b""], stop


def test_abort_drops_the_clip_and_later_pushes() -> None:
    clip, events = make_clip()
    clip.abort("the job failed")
    clip.abort("again")
    clip.push(speechlike_wav(0.1))
    assert clip.aborted == "the job failed" and not clip.has_audio and clip.settled
    assert events == ["changed"]


def test_a_chunk_in_another_format_fails_the_clip(caplog: pytest.LogCaptureFixture) -> None:
    clip, _ = make_clip()
    clip.push(speechlike_wav(0.1))
    with caplog.at_level("WARNING", logger="bot.playback.clip"):
        clip.push(speechlike_wav(0.1, rate=16_000))
    assert clip.failure == "its audio could not be streamed"  # members get plain words...
    assert "Chunk 2 is 16000 Hz mono 16-bit, the first was 24000 Hz mono 16-bit" in caplog.text
    assert clip.audio.aborted


def test_garbage_fails_the_clip_with_a_reason() -> None:
    clip, _ = make_clip()
    clip.push(b"not a wav at all")
    assert clip.failure == "its audio could not be streamed"
    assert clip.settled and not clip.has_audio


def test_no_reader_before_the_first_chunk() -> None:
    clip, _ = make_clip()
    assert not clip.settled
    with pytest.raises(Exception, match="no audio yet"):
        clip.audio.open(0)


async def test_fallback_runs_once_and_callback_errors_are_contained() -> None:
    reasons: list[str] = []

    async def fallback(reason: str) -> None:
        reasons.append(reason)

    async def broken_state(text: str) -> None:
        raise RuntimeError("card gone")

    clip = VoiceClip("j", 1, "alice", "hi", on_state=broken_state, fallback=fallback)
    await clip.report("playing in #Lounge")  # logged, not raised
    assert await clip.give_up("first reason") is True
    assert await clip.give_up("second reason") is False
    assert reasons == ["first reason"]

    aborted = VoiceClip("j2", 1, "alice", "hi", fallback=fallback)
    aborted.abort("cancelled")
    assert await aborted.give_up("whatever") is False  # a cancelled job posts nothing
    assert reasons == ["first reason"]
