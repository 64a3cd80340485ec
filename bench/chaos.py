"""The long kill campaign: SIGKILL the pipeline process at seeded random points, then audit.

For each engine (a SQLite file, and PostgreSQL at ``CHATTERBOX_TEST_POSTGRES_URL`` in a fresh
schema when it answers) this chains ``--points`` worker processes (tests/chaos/worker.py) on
one database and one gateway emulator (with its seeded faults:
``campaign_emulator_config``), each killed with SIGKILL at a random moment after it
started, and a final one that runs until nothing is open; then it audits every job (see
tests/chaos/campaign.py) and prints the counts: jobs, posted exactly once, closed without
audio (settled, member told), closed inside the delivery window, and problems (each one
listed). It exits 1 when there is any problem. ``make test`` runs a few points of the same
campaign (tests/chaos/test_kill.py); this is the long run.

PostgreSQL that does not answer is a failure (exit 2, one line saying why) under ``CI=true``
or when ``--engines`` names it; otherwise (the default engines, on a machine without the
server) that engine is skipped, and the output says so.

    .venv/bin/python bench/chaos.py [--points 50] [--seed 1] [--engines sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.gateway.emulator import GatewayEmulator  # noqa: E402
from tests.chaos.campaign import campaign_emulator_config, run_campaign  # noqa: E402
from tests.store.dbkit import pg_execute  # noqa: E402

POSTGRES_URL = os.environ.get(
    "CHATTERBOX_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
DEFAULT_ENGINES = "sqlite,postgres"
EXIT_UNREACHABLE = 2


async def postgres_problem() -> str | None:
    """None when PostgreSQL answers, else one line saying why not."""
    import asyncpg

    try:
        dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn, timeout=5)
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_URL.split('@')[-1]} is not reachable ({type(exc).__name__})"
    await conn.close()
    return None


async def campaign(engine: str, points: int, seed: int) -> bool:
    config = campaign_emulator_config(seed)
    schema = None
    with tempfile.TemporaryDirectory(prefix="chatterbox-chaos-") as workdir:
        if engine == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(workdir) / 'data' / 'bot.db'}"
        else:
            url = POSTGRES_URL
            schema = f"chaos_{uuid.uuid4().hex[:10]}"
            await pg_execute(url, f'CREATE SCHEMA "{schema}"')
        started = time.perf_counter()
        try:
            async with GatewayEmulator(config) as emulator:
                audit = await run_campaign(db=url, schema=schema, emulator=emulator, workdir=Path(workdir),
                                           points=points, seed=seed)
        finally:
            if schema is not None:
                await pg_execute(url, f'DROP SCHEMA "{schema}" CASCADE')
        print(f"{engine}: {points} kill points in {time.perf_counter() - started:.0f} s: {audit.summary()}")
        for problem in audit.problems:
            print(f"  PROBLEM: {problem}")
        return not audit.problems


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engines", default=None, help=f"comma-separated (default {DEFAULT_ENGINES})")
    args = parser.parse_args()
    engines = [engine.strip() for engine in (args.engines or DEFAULT_ENGINES).split(",")]
    if "postgres" in engines:
        problem = await postgres_problem()
        if problem is not None:
            if args.engines is not None or os.environ.get("CI", "").lower() == "true":
                why = "CI=true" if args.engines is None else "--engines names it"
                print(f"chaos: {problem}; it is required ({why})", file=sys.stderr)
                return EXIT_UNREACHABLE
            print(f"postgres: SKIPPED, {problem}; pass --engines postgres or set CI=true to make "
                  "that a failure")
            engines.remove("postgres")
    ok = True
    for engine in engines:
        ok = await campaign(engine, args.points, args.seed) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
