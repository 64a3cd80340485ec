"""Hands-free reading: silence between messages read back to back, and time to the first sound.

The whole bot runs against the Discord sandbox and the gateway emulator (provider timing
``--base-seconds`` + ``--per-char-seconds`` per character, like a queue at the provider), with
voice played **in real time**: the test voice connection takes one Opus frame every 20 ms, as
Discord's voice sender does. Two members each post ``--messages`` / 2 messages in a burst.

Measured, for the reader as built (look-ahead 2: the next message is generated while the
current one plays) and, in the same run, for the naive peer (look-ahead 1: a message is only
sent to the provider once the previous one has played):

* gap: from the last audio frame of one message to the first audio frame of the next
  (median and worst), and how many gaps exceed 1 s;
* first sound: from posting the first message to its first audio frame.

Not a test: it prints figures. ``.venv/bin/python bench/autoread_gaps.py [--messages 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import discord

from cogs.voice.player import OPUS_SILENCE
from tests.discord.autoread_support import ENABLED, MESSAGE_CONTENT, Reading
from tests.discord.harness import open_harness
from tests.discord.voice_support import Playback, TestVoice, VoiceLab, VoiceWorld

FRAME = 0.02


class PacedVoice(TestVoice):
    """``TestVoice`` that takes frames at Discord's pace (one per 20 ms) and notes when the
    first and last audio frame of each playback went out."""

    __test__ = False
    marks: dict[int, tuple[float, float]]

    def _drain(self, playback: Playback, after: Callable[[Exception | None], Any] | None) -> None:
        source = playback.source
        error: Exception | None = None
        start = time.monotonic()
        frames = 0
        first = last = None
        try:
            while not playback.stopped.is_set():
                data = source.read()
                if not data:
                    error = getattr(source, "_current_error", None)
                    break
                frames += 1
                if data == OPUS_SILENCE:
                    playback.fillers += 1
                else:
                    now = time.monotonic()
                    first = now if first is None else first
                    last = now
                    playback.packets.append(data)
                delay = start + frames * FRAME - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # this is the voice sender's thread, not the event loop
        except Exception as exc:
            error = exc
        finally:
            if first is not None and last is not None:
                PacedVoice.marks[id(playback)] = (first, last)
            playback.ended.set()
            source.cleanup()
            playback.error = error
            if after is not None:
                after(error)
            playback.finished.set()
            self.lab.notify()


PacedVoice.marks = {}


def paced_lab() -> VoiceLab:
    lab = VoiceLab()

    class Bound(PacedVoice):
        def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
            TestVoice.__init__(self, client, channel, lab)

    lab.voice_cls = Bound
    return lab


async def run(messages: int, lookahead: int, emulator: dict[str, float], folder: Path) -> dict[str, Any]:
    lab = paced_lab()
    async with open_harness(
        folder / f"lookahead-{lookahead}",
        voice_cls=lab.voice_cls,
        emulator={**emulator, "workers": 8},
        settings={**ENABLED, "quota_requests_per_day": 1000},
        privileged_intents=MESSAGE_CONTENT,
    ) as h:
        r = Reading(VoiceWorld(h, lab))
        answer = await r.command("setup", h.mo, text_channel=h.general)
        assert answer.startswith("Hands-free reading is on."), answer
        r.cog.service.lookahead = lookahead
        await r.opt_in(h.alice, h.bob)
        await r.w.join(h.alice)
        await r.w.join(h.bob)
        posted = time.monotonic()
        for n in range(messages):
            who = h.alice if n % 2 == 0 else h.bob
            await r.say(who, f"Message number {n + 1} from {who.name}, read aloud.")
        async with asyncio.timeout(600):
            await r.reader.wait_until(lambda: len(r.reader.finished) >= messages)
            await lab.wait_until(lambda: all(p.finished.is_set() for p in lab.playbacks))
        spans = [PacedVoice.marks[id(p)] for p in lab.playbacks if id(p) in PacedVoice.marks]
        gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
        return {
            "played": len(spans),
            "first_sound": spans[0][0] - posted if spans else float("nan"),
            "gap_median": statistics.median(gaps) if gaps else float("nan"),
            "gap_worst": max(gaps) if gaps else float("nan"),
            "gaps_over_1s": sum(g > 1.0 for g in gaps),
            "gaps": len(gaps),
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--base-seconds", type=float, default=1.0)
    parser.add_argument("--per-char-seconds", type=float, default=0.01)
    args = parser.parse_args()
    emulator = {"base_seconds": args.base_seconds, "per_char_seconds": args.per_char_seconds, "jitter": 0.0}
    print(f"hands-free reading, {args.messages} messages from 2 members, provider time "
          f"{args.base_seconds:g} s + {args.per_char_seconds:g} s/char, voice in real time")
    with tempfile.TemporaryDirectory() as tmp:
        for name, lookahead in (("reader (look-ahead 2)", 2), ("naive peer (look-ahead 1)", 1)):
            figures = await run(args.messages, lookahead, emulator, Path(tmp))
            print(
                f"  {name:28} first sound {figures['first_sound']:5.2f} s   gap median "
                f"{figures['gap_median']:5.2f} s, worst {figures['gap_worst']:5.2f} s, "
                f"{figures['gaps_over_1s']}/{figures['gaps']} gaps over 1 s  ({figures['played']} played)"
            )


if __name__ == "__main__":
    asyncio.run(main())
