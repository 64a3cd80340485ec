"""What the audio cache saves: the cost of a hit and of a miss, and provider calls per request.

Against the local gateway emulator (fast timing) and a SQLite file in a temporary folder:

* miss:  the first request of a text — quota reserved, POST, polls, download, cache filled.
* hit:   the same request again — index lookup, file read, a $0 result; no provider call.
* 1,000 identical requests with the cache on: exactly one provider call (printed, and the
  script exits non-zero if it is not so).
* the naive peer, measured in the same run: the same identical requests with
  ``CACHE_MAX_MB=0`` (no cache), where every request is a paid provider call.
* partial hits: requests of three chunks of which two (an intro and an outro said before)
  are cached and one is new each time; with per-chunk hits only the new chunk is sent and
  paid. Peer in the same run: the same requests with the cache off (what a whole-request
  cache paid too, since none of these requests was ever seen whole). Provider calls, cost
  and time per request are printed; the script exits non-zero unless exactly one call per
  request was made with the cache on.

Not a test: it prints figures. ``.venv/bin/python bench/cache.py [--requests 1000] [--peer 50]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import Settings
from bot.gateway.emulator import EmulatorConfig, GatewayEmulator
from bot.gateway.models import TTSParams
from bot.services import Services
from bot.speech.events import DeliveryTarget, Requester

TEXT = "The same sentence, in the same voice, should never be paid for twice."
INTRO = "Good evening, everyone, and welcome back to the server."
OUTRO = "That was all for today, see you all again tomorrow."
WHO = Requester(user_id=1, display_name="bench", guild_id=None)
TARGET = DeliveryTarget(kind="file")


def settings_for(
    emulator: GatewayEmulator, folder: Path, *, cache_mb: int, chunk_chars: int = 300
) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        chatterbox_gateway_url=emulator.base_url,
        chatterbox_api_key=emulator.api_key,
        chatterbox_allow_http=True,
        database_url=f"sqlite+aiosqlite:///{folder / 'bench.db'}",
        cache_dir=folder / "cache",
        cache_max_mb=cache_mb,
        quota_cooldown_seconds=0,
        quota_requests_per_day=100_000,
        quota_chars_per_day=100_000_000,
        chatterbox_rate_per_second=1000,
        chatterbox_rate_burst=1000,
        chatterbox_chunk_chars=chunk_chars,
    )


async def one(services: Services) -> tuple[float, bool]:
    started = time.perf_counter()
    job = await services.speech.start(WHO, TEXT, voice_url=None, params=TTSParams(), target=TARGET)
    result = await job.result()
    await services.speech.mark_delivered(job.job_id)
    return (time.perf_counter() - started) * 1000, result.cached


async def partial(services: Services, index: int) -> tuple[float, Decimal, int]:
    """One three-chunk request whose middle chunk is new: (ms, cost, chunks from the cache)."""
    started = time.perf_counter()
    text = f"{INTRO} This is news item number {index} for tonight. {OUTRO}"
    job = await services.speech.start(WHO, text, voice_url=None, params=TTSParams(), target=TARGET)
    result = await job.result()
    await services.speech.mark_delivered(job.job_id)
    assert result.chunks == 3, result.chunks
    return (time.perf_counter() - started) * 1000, result.cost, result.cached_chunks


async def partial_hits(emulator: GatewayEmulator, folder: Path, cache_mb: int, count: int
                       ) -> tuple[list[float], Decimal, int, int]:
    """``count`` partly cached requests (after one that caches intro and outro): (ms each,
    total cost, provider calls, chunks served from the cache)."""
    settings = settings_for(emulator, folder, cache_mb=cache_mb, chunk_chars=60)
    async with await Services.open(settings) as services:
        await partial(services, 0)  # says the intro and the outro once
        before = emulator.counts["submit"]
        runs = [await partial(services, index) for index in range(1, count + 1)]
        calls = emulator.counts["submit"] - before
    return ([r[0] for r in runs], sum((r[1] for r in runs), Decimal("0")), calls, sum(r[2] for r in runs))


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values):8.2f} ms   mean {statistics.fmean(values):8.2f} ms"


async def main(requests: int, peer: int) -> int:
    config = EmulatorConfig(base_seconds=0.05, per_char_seconds=0.0, jitter=0.0, seed=1,
                            balance=Decimal("1000000"))
    async with GatewayEmulator(config) as emulator:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            async with await Services.open(settings_for(emulator, folder / "on", cache_mb=64)) as services:
                miss, cached = await one(services)
                assert not cached
                hits = []
                for _ in range(requests - 1):
                    took, cached = await one(services)
                    assert cached
                    hits.append(took)
                calls_with_cache = emulator.counts["submit"]
            before = emulator.counts["submit"]
            async with await Services.open(settings_for(emulator, folder / "off", cache_mb=0)) as naive:
                paid = [(await one(naive))[0] for _ in range(peer)]
            calls_without = emulator.counts["submit"] - before
            part_ms, part_cost, part_calls, part_cached = await partial_hits(
                emulator, folder / "part-on", 64, peer)
            naive_ms, naive_cost, naive_calls, _ = await partial_hits(emulator, folder / "part-off", 0, peer)
    print(f"audio cache, {requests:,} identical requests against the emulator (one chunk each)")
    print(f"  miss (first request, paid):    {miss:8.2f} ms")
    print(f"  hit  (the other {requests - 1:,}):       {ms(hits)}")
    print(f"  provider calls with the cache: {calls_with_cache} for {requests:,} requests")
    print(f"naive peer: no cache (CACHE_MAX_MB=0), {peer} identical requests")
    print(f"  every request paid:            {ms(paid)}")
    print(f"  provider calls without cache:  {calls_without} for {peer} requests "
          f"(would be {requests:,} for {requests:,})")
    print(f"partial hits: {peer} requests of 3 chunks, intro and outro cached, the middle one new")
    print(f"  per-chunk cache:               {ms(part_ms)}")
    print(f"    provider calls {part_calls}, cost ${part_cost:.2f}, {part_cached} chunks from the cache")
    print("  naive peer (cache off; a whole-request cache never hits these either):")
    print(f"                                 {ms(naive_ms)}")
    print(f"    provider calls {naive_calls}, cost ${naive_cost:.2f}")
    print(f"  saved: {naive_calls - part_calls} provider calls, ${naive_cost - part_cost:.2f}")
    ok = calls_with_cache == 1 and calls_without == peer
    return 0 if ok and part_calls == peer and naive_calls == 3 * peer else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--peer", type=int, default=50)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.requests, args.peer)))
