"""What the audio cache saves: the cost of a hit and of a miss, and provider calls per request.

Against the local gateway emulator (fast timing) and a SQLite file in a temporary folder:

* miss:  the first request of a text — quota reserved, POST, polls, download, cache filled.
* hit:   the same request again — index lookup, file read, a $0 result; no provider call.
* 1,000 identical requests with the cache on: exactly one provider call (printed, and the
  script exits non-zero if it is not so).
* the naive peer, measured in the same run: the same identical requests with
  ``CACHE_MAX_MB=0`` (no cache), where every request is a paid provider call.

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
WHO = Requester(user_id=1, display_name="bench", guild_id=None)
TARGET = DeliveryTarget(kind="file")


def settings_for(emulator: GatewayEmulator, folder: Path, *, cache_mb: int) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
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
    )


async def one(services: Services) -> tuple[float, bool]:
    started = time.perf_counter()
    job = await services.speech.start(WHO, TEXT, voice_url=None, params=TTSParams(), target=TARGET)
    result = await job.result()
    await services.speech.mark_delivered(job.job_id)
    return (time.perf_counter() - started) * 1000, result.cached


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
    print(f"audio cache, {requests:,} identical requests against the emulator (one chunk each)")
    print(f"  miss (first request, paid):    {miss:8.2f} ms")
    print(f"  hit  (the other {requests - 1:,}):       {ms(hits)}")
    print(f"  provider calls with the cache: {calls_with_cache} for {requests:,} requests")
    print(f"naive peer: no cache (CACHE_MAX_MB=0), {peer} identical requests")
    print(f"  every request paid:            {ms(paid)}")
    print(f"  provider calls without cache:  {calls_without} for {peer} requests "
          f"(would be {requests:,} for {requests:,})")
    return 0 if calls_with_cache == 1 and calls_without == peer else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--peer", type=int, default=50)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.requests, args.peer)))
