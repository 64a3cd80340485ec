"""How fast /speak's voice autocomplete answers with many saved voices (Discord allows 3 s).

A SQLite database gets ``--voices`` saved voices in one server (a third of them shared), then
two ways of answering "the voices alice may use whose name starts with …" are timed ``--runs``
times each, for a short and a longer prefix, and the medians are printed side by side:

* bot path:  ``VoiceLibrary.usable`` — one range query on the ``(guild_id, name_key)`` index,
             LIMIT 25 (``bot.voices.library.usable_query``).
* naive:     load every voice of the server (names, scope, owner; not the clips) and
             filter, sort and cut in Python.

Not a test: it prints figures and asserts nothing.

    .venv/bin/python bench/voices_autocomplete.py [--voices 5000] [--runs 21]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.clock import ManualClock
from bot.config import Settings
from bot.store import open_database
from bot.store.tables import voices
from bot.voices import VoiceLibrary
from bot.voices.clips import NormalisedClip

GUILD, ALICE, BOB = 1, 11, 22


async def main(count: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = await open_database(f"sqlite+aiosqlite:///{folder}/bench.db")
        clock = ManualClock()
        library = VoiceLibrary(db, Settings(_env_file=None), clock)  # type: ignore[call-arg]
        wav = b"RIFF" + b"\0" * 240_000  # the size of a stored clip; its content does not matter here
        first = await library.add(GUILD, ALICE, "voice 00000", NormalisedClip(wav, "0" * 64, 5.0, 5.0),
                                  consent=True)
        async with db.read() as conn:
            found = await conn.execute(select(voices).where(voices.c.id == first.id))
            template = dict(found.one()._mapping)
        rows = []
        for n in range(1, count):
            owner = ALICE if n % 5 == 0 else BOB
            rows.append({**template, "id": f"{n:032x}", "owner_id": owner, "owner_key": owner,
                         "name": f"voice {n:05d}", "name_key": f"voice {n:05d}",
                         "scope": "server" if n % 3 == 0 else "private"})
        await db.write(lambda conn: conn.execute(voices.insert(), rows))

        async def naive(typed: str) -> list[str]:
            async with db.read() as conn:
                found = (await conn.execute(
                    select(voices.c.name, voices.c.name_key, voices.c.scope, voices.c.owner_id)
                    .where(voices.c.guild_id == GUILD))).all()
            names = [r.name for r in found if r.name_key.startswith(typed)
                     and (r.scope != "private" or r.owner_id == ALICE)]
            return sorted(names)[:25]

        async def bot_path(typed: str) -> list[str]:
            return [v.name for v in await library.usable(GUILD, ALICE, typed)]

        print(f"{count} voices in one server; median of {runs} runs")
        print(f"{'prefix':>14} {'bot path (indexed, LIMIT 25)':>30} {'naive (load all, filter)':>26}")
        for typed in ("voice", "voice 012"):
            timings = {}
            for name, fn in (("bot", bot_path), ("naive", naive)):
                samples = []
                for _ in range(runs):
                    start = time.perf_counter()
                    await fn(typed)
                    samples.append(time.perf_counter() - start)
                timings[name] = statistics.median(samples) * 1000
            print(f"{typed!r:>14} {timings['bot']:>27.2f} ms {timings['naive']:>23.2f} ms")
        await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    asyncio.run(main(args.voices, args.runs))
