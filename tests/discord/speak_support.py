"""Small helpers shared by the /speak tests (not fixtures: plain functions)."""

from __future__ import annotations

import io
import math
import struct
import wave

from bot.gateway.emulator import EmulatorJob
from tests.discord.harness import Harness
from tests.sandbox import InteractionHandle, Message


def make_wav(seconds: float, *, rate: int = 24_000, pitch: float = 220.0) -> bytes:
    """A mono 16-bit sine WAV, for voice-clip attachments."""
    frames = int(seconds * rate)
    samples = (int(8000 * math.sin(2 * math.pi * pitch * n / rate)) for n in range(frames))
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return out.getvalue()


def statuses(message: Message) -> list[str]:
    """The card's ``Status:`` line in every revision (the "thinking" placeholder has none)."""
    found = []
    for revision in message.history:
        for line in revision.content.splitlines():
            if line.startswith("**Status:** "):
                found.append(line.removeprefix("**Status:** "))
    return found


async def card_with(handle: InteractionHandle, words: str) -> Message:
    """The card once its content contains ``words``."""
    return await handle.wait_for_original(lambda m: words in m.content)


async def refusal(handle: InteractionHandle, words: str) -> Message:
    """The member's ephemeral answer containing ``words``."""
    return await handle.wait_for_message(lambda m: m.ephemeral and words in m.content)


async def processing_job(h: Harness) -> EmulatorJob:
    """The emulator's job once it is PROCESSING (held there by a ManualClock)."""
    await h.emulator.wait_until(lambda: any(j.status == "PROCESSING" for j in h.emulator.jobs.values()))
    return next(j for j in h.emulator.jobs.values() if j.status == "PROCESSING")


def emulator_submissions(h: Harness) -> int:
    """POSTs the emulator received (accepted or not)."""
    return h.emulator.counts["submit"]
