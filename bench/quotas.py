"""Quota reservations per second: the project, a naive conditional-upsert peer, the old code.

For SQLite (a file) and PostgreSQL (127.0.0.1:5432, database ``test``, a throwaway schema;
``CHATTERBOX_TEST_POSTGRES_URL`` to change it; skipped with a note when unreachable), in the
same run:

* **project**: ``QuotaService.reserve`` (cached policies, the server's day and the member's
  row by conditional upserts, the ledger row: one statement on PostgreSQL, three driver calls
  on SQLite), limits set out of reach so every request is granted;
* **peer**: the naive version written here: one transaction with ``INSERT … ON CONFLICT DO
  UPDATE SET used = used + 1 WHERE used + 1 <= limit RETURNING`` and a ledger insert;
* **old**: the reservation code before the counters (``bot/quotas/service.py`` at the
  "Architecture:" commit, loaded from git), which summed the member's day in the ledger.

Each is measured as one stream (one reservation after another) and as 100 concurrent
contenders for the same member, in interleaved rounds (the best round is shown, so that load
from other work on the machine does not decide the comparison). The project is also measured
after 10,000 more ledger rows for that member. Over-grants: 100 contenders against a daily
limit of 10 (project and peer) must grant exactly 10, and on PostgreSQL also 4 OS processes of
25 contenders each.
Not a test: it prints figures and the goals next to them, and asserts nothing.

    .venv/bin/python bench/quotas.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table  # noqa: E402
from sqlalchemy.dialects import postgresql, sqlite  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection  # noqa: E402

from bot.clock import ManualClock  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.quotas import QuotaExceeded, QuotaService  # noqa: E402
from bot.store import Database, new_id, open_database  # noqa: E402
from bot.store.tables import usage_ledger  # noqa: E402

POSTGRES_URL = os.environ.get(
    "CHATTERBOX_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
OLD_COMMIT_GREP = "^Architecture:"
GUILD, USER = 4242, 77
CONTENDERS = 100
LIMIT = 10
FILL_ROWS = 10_000
PROCESSES = 4
ROUNDS = 5

peer_metadata = MetaData()
peer_counters = Table(
    "bench_peer_counters", peer_metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("used", Integer, nullable=False),
)
peer_ledger = Table(
    "bench_peer_ledger", peer_metadata,
    Column("id", String(32), primary_key=True),
    Column("guild_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("requests", Integer, nullable=False),
)


def settings(limit: int | None) -> Settings:
    high = 10**9
    return Settings(  # type: ignore[call-arg]
        _env_file=None, quota_requests_per_day=limit or high, quota_chars_per_day=high,  # pyright: ignore[reportCallIssue]
        quota_cooldown_seconds=0, quota_max_in_flight=high, quota_max_chars_per_request=100_000,
    )


class Peer:
    """The naive conditional upsert, in the same ``Database.write`` transaction helper."""

    def __init__(self, db: Database, limit: int) -> None:
        self._db, self._limit = db, limit

    async def reserve(self, **_: Any) -> None:
        async def write(conn: AsyncConnection) -> None:
            t = peer_counters.c
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            insert = dialect.insert(peer_counters)
            stmt = insert.values(guild_id=GUILD, user_id=USER, used=1).on_conflict_do_update(
                index_elements=[t.guild_id, t.user_id], set_={"used": t.used + 1},
                where=t.used + 1 <= self._limit,
            ).returning(t.used)
            if (await conn.execute(stmt)).first() is None:
                raise QuotaExceeded("peer limit", code="requests_per_day")
            await conn.execute(
                peer_ledger.insert().values(id=new_id(), guild_id=GUILD, user_id=USER, requests=1)
            )

        await self._db.write(write)


def old_service_class() -> type[Any] | None:
    """``QuotaService`` as it was before the counters, compiled from git (None if unavailable)."""
    try:
        commit = subprocess.run(
            ["git", "log", "--format=%H", "-1", f"--grep={OLD_COMMIT_GREP}"], cwd=ROOT,
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        source = subprocess.run(
            ["git", "show", f"{commit}:bot/quotas/service.py"], cwd=ROOT,
            capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    if not commit or "member_usage" not in source:
        return None
    # Helpers the old module imported from where they lived then.
    source = source.replace("next_reset, plural\n", "next_reset\nfrom bot.formats import plural\n")
    module = types.ModuleType("bench_old_quota_service")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{commit[:8]}:bot/quotas/service.py", "exec"), module.__dict__)
    return module.QuotaService


Reserve = Callable[..., Awaitable[Any]]


async def single_stream(reserve: Reserve, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await reserve(guild_id=GUILD, user_id=USER, requests=1, characters=10)
    return count / (time.perf_counter() - started)


async def contenders(reserve: Reserve, count: int) -> float:
    each = max(1, count // CONTENDERS)

    async def one() -> None:
        for _ in range(each):
            await reserve(guild_id=GUILD, user_id=USER, requests=1, characters=10)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(CONTENDERS)))
    return each * CONTENDERS / (time.perf_counter() - started)


async def over_grants(reserve: Reserve) -> int:
    async def one() -> bool:
        try:
            await reserve(guild_id=GUILD, user_id=USER, requests=1, characters=10)
        except QuotaExceeded:
            return False
        return True

    granted = sum(await asyncio.gather(*(one() for _ in range(CONTENDERS))))
    return granted - LIMIT


async def fill_ledger(db: Database, rows: int) -> None:
    """``rows`` settled reservations of the member today, written in bulk."""
    now = datetime.now(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    values = [
        {"id": new_id(), "guild_id": GUILD, "user_id": USER, "requests": 1, "characters": 10,
         "price_per_request": Decimal("0.01"), "cost": Decimal("0.01"), "state": "committed",
         "committed_requests": 1, "refunded_requests": 0, "job_id": None, "created_at": now,
         "settled_at": now, "quota_day": day}
        for _ in range(rows)
    ]
    async with db.engine.begin() as conn:
        await conn.execute(usage_ledger.insert(), values)


class Target:
    def __init__(self, kind: str, url: str, schema: str | None) -> None:
        self.kind, self.url, self.schema = kind, url, schema

    async def open(self) -> Database:
        db = await open_database(self.url, schema=self.schema)
        async with db.engine.begin() as conn:
            await conn.run_sync(peer_metadata.create_all)
        return db


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def line(label: str, value: float, note: str = "") -> None:
    print(f"  {label:<44} {value:>9,.0f} /s  {note}")


async def measure(target: Target, count: int, old_class: type[Any] | None) -> dict[str, float]:
    figures: dict[str, float] = {}
    clock = ManualClock(datetime.now(UTC))

    async def fresh() -> Database:
        if target.kind == "sqlite":
            target.url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-quotas-')}/bot.db"
        else:
            target.schema = f"bench_{uuid.uuid4().hex[:10]}"
            await pg_admin(f'CREATE SCHEMA "{target.schema}"')
        return await target.open()

    async def close(db: Database) -> None:
        await db.close()
        if db.schema is not None:
            await pg_admin(f'DROP SCHEMA "{db.schema}" CASCADE')

    variants: list[tuple[str, Callable[[Database], Reserve], int, int]] = [
        ("project", lambda db: QuotaService(db, settings(None), clock).reserve, count, 0),
        ("peer", lambda db: Peer(db, 10**9).reserve, count, 0),
        ("project after 10,000 ledger rows", lambda db: QuotaService(db, settings(None), clock).reserve,
         count, FILL_ROWS),
    ]
    if old_class is not None:
        old_count = max(100, count // 4)
        variants += [
            ("old code", lambda db: old_class(db, settings(None), clock).reserve, old_count, 0),
            ("old code after 10,000 ledger rows", lambda db: old_class(db, settings(None), clock).reserve,
             old_count, FILL_ROWS),
        ]
    for mode, fn in (("1 stream", single_stream), (f"{CONTENDERS} contenders", contenders)):
        # Every variant on its own database; rounds interleave the variants so that load from
        # other work on the machine hits them alike; each figure is the best round.
        opened: list[tuple[str, Reserve, int, Database]] = []
        try:
            for name, make, n, fill in variants:
                db = await fresh()
                opened.append((name, make(db), n, db))
                if fill:
                    await fill_ledger(db, fill)
                await opened[-1][1](guild_id=GUILD, user_id=USER, requests=1, characters=10)  # warm up
            for _ in range(ROUNDS):
                for name, reserve, n, _db in opened:
                    rate = await fn(reserve, max(CONTENDERS, n // ROUNDS))
                    figures[f"{name}, {mode}"] = max(rate, figures.get(f"{name}, {mode}", 0.0))
        finally:
            for *_, db in opened:
                await close(db)

    for name, make in (("project", lambda db: QuotaService(db, settings(LIMIT), clock).reserve),
                       ("peer", lambda db: Peer(db, LIMIT).reserve)):
        db = await fresh()
        try:
            figures[f"over-grants, {name}"] = await over_grants(make(db))
        finally:
            await close(db)
    if target.kind == "postgres":
        db = await fresh()
        try:
            figures["over-grants, project, 4 OS processes"] = await processes(target)
        finally:
            await close(db)
    return figures


async def processes(target: Target) -> float:
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--worker", target.url, str(target.schema),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        )
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        assert worker.stdout is not None
        await worker.stdout.readline()  # "ready"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write(b"go\n")
        await worker.stdin.drain()
    outputs = [await worker.communicate() for worker in workers]
    granted = sum(json.loads(out.decode().strip().splitlines()[-1])["granted"] for out, _ in outputs)
    return granted - LIMIT


async def worker(url: str, schema: str) -> None:
    db = await open_database(url, schema=schema, migrate=False)
    try:
        quotas = QuotaService(db, settings(LIMIT), ManualClock(datetime.now(UTC)))
        await quotas.usage(GUILD, USER)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        gate = asyncio.Semaphore(5)  # within the shared server's connection limit

        async def one() -> bool:
            async with gate:
                try:
                    await quotas.reserve(guild_id=GUILD, user_id=USER, requests=1, characters=10)
                except QuotaExceeded:
                    return False
                return True

        results = await asyncio.gather(*(one() for _ in range(CONTENDERS // PROCESSES)))
        print(json.dumps({"granted": sum(results)}), flush=True)
    finally:
        await db.close()


def report(kind: str, f: dict[str, float]) -> None:
    print(f"\n{kind}")
    for mode in ("1 stream", f"{CONTENDERS} contenders"):
        project, peer = f[f"project, {mode}"], f[f"peer, {mode}"]
        filled = f[f"project after 10,000 ledger rows, {mode}"]
        line(f"project, {mode}", project, f"{project / peer:.2f}x the peer (goal >= 0.7x)")
        line(f"peer (naive conditional upsert), {mode}", peer)
        line(f"project after 10,000 ledger rows, {mode}", filled,
             f"{(filled - project) / project:+.0%} vs empty (goal within 10%)")
        old = f.get(f"old code, {mode}")
        if old is not None:
            line(f"old code, {mode}", old, f"project is {project / old:.1f}x (goal >= 10x)")
            old_filled = f[f"old code after 10,000 ledger rows, {mode}"]
            line(f"old code after 10,000 ledger rows, {mode}", old_filled,
                 f"project is {filled / old_filled:.1f}x")
        else:
            print(f"  old code, {mode}: not measured (git unavailable); the issue's figure was ~250/s")
    for name, value in f.items():
        if name.startswith("over-grants"):
            print(f"  {name:<44} {value:>9.0f}     (goal 0)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--worker", nargs=2, metavar=("URL", "SCHEMA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        await worker(*args.worker)
        return
    old_class = old_service_class()
    print(f"Quota reservations per second ({args.requests:,} per figure; {os.cpu_count()} CPUs)")
    report("SQLite (file, WAL)", await measure(Target("sqlite", "", None), args.requests, old_class))
    try:
        await pg_admin("SELECT 1")
    except Exception as exc:
        print(f"\nPostgreSQL: skipped ({type(exc).__name__}: {exc})")
        return
    report("PostgreSQL", await measure(Target("postgres", POSTGRES_URL, None), args.requests, old_class))


if __name__ == "__main__":
    asyncio.run(main())
