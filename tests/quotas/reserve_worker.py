"""A second process for the cross-process concurrency test.

``python -m tests.quotas.reserve_worker URL SCHEMA COUNT``: opens the database (already
migrated by the test), prints ``ready``, waits for a line on stdin (so both processes start
together), fires COUNT concurrent reservations for one member whose daily limit is 10, and
prints a JSON line ``{"granted": n, "refused": m}``.
"""

from __future__ import annotations

import asyncio
import json
import sys

from bot.clock import ManualClock
from bot.config import Settings
from bot.quotas import QuotaExceeded, QuotaService
from bot.store import open_database

GUILD, USER = 500, 600


def limited_settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, quota_requests_per_day=10, quota_cooldown_seconds=0, quota_max_in_flight=1000
    )


async def reserve_many(quotas: QuotaService, count: int) -> tuple[int, int]:
    async def one() -> bool:
        try:
            await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=10)
        except QuotaExceeded:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(count)))
    return results.count(True), results.count(False)


async def main(url: str, schema: str, count: int) -> None:
    db = await open_database(url, schema=schema, migrate=False)
    try:
        quotas = QuotaService(db, limited_settings(), ManualClock())
        await quotas.usage(GUILD, USER)  # connect before the start signal
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        granted, refused = await reserve_many(quotas, count)
        print(json.dumps({"granted": granted, "refused": refused}), flush=True)
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
