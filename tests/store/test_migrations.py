"""Migrations: from nothing to head, from the previous revision with data, and tables.py agrees."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, select, text

from bot.clock import ManualClock
from bot.quotas import QuotaService, counters
from bot.store import (
    Database,
    DatabaseUrlError,
    JobsRepository,
    JobState,
    PartState,
    current_revision,
    head_revision,
    open_database,
    upgrade,
)
from bot.store.engine import create_engine
from bot.store.migrate import alembic_config, shipped_head
from bot.store.tables import bot_guard, metadata, usage_ledger
from tests.quotas.conftest import make_settings
from tests.store.dbkit import DbTarget, sqlite_target

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def test_empty_database_migrates_to_head(db_target: DbTarget) -> None:
    assert await current_revision(db_target.url, schema=db_target.schema) is None
    db = await db_target.open()
    try:
        assert await db.current_revision() == head_revision() == "0010"
        async with db.read() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            guard_rows = (await conn.execute(select(bot_guard))).all()
        assert set(metadata.tables) <= tables
        assert len(guard_rows) == 1 and guard_rows[0].paused is False
    finally:
        await db.close()


async def test_upgrade_from_previous_revision_keeps_data(db_target: DbTarget) -> None:
    assert await upgrade(db_target.url, schema=db_target.schema, revision="0001") == "0001"
    engine = create_engine(db_target.url, schema=db_target.schema)
    try:
        async with engine.begin() as conn:
            # Written with the 0001 column set only (no forgiven_at, no audit_log yet).
            await conn.execute(
                text(
                    "INSERT INTO guild_settings (guild_id, paused, exempt_role_ids, daily_request_budget) "
                    "VALUES (:g, :p, '[5]', 7)"
                ),
                {"g": 111, "p": False},
            )
            await conn.execute(
                usage_ledger.insert().values(
                    id="a" * 32, guild_id=111, user_id=222, requests=2, characters=40,
                    price_per_request=Decimal("0.01"), cost=Decimal("0.02"), state="reserved",
                    committed_requests=0, refunded_requests=0, job_id="b" * 32, created_at=T0,
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO jobs (id, user_id, user_display, guild_id, text, params, chunk_count, "
                    "reservation_id, status, delivery, delivered, created_at, updated_at) VALUES "
                    "(:id, 222, 'Ann', 111, 'hello there', '{}', 1, :r, 'submitted', '{}', :d, :t, :t)"
                ),
                {"id": "b" * 32, "r": "a" * 32, "d": False, "t": T0 if db_target.kind == "postgres"
                 else "2026-01-01 12:00:00.000000"},
            )
            await conn.execute(
                text(
                    "INSERT INTO job_parts (job_id, idx, text, request_id, status, updated_at) "
                    "VALUES (:id, 0, 'hello there', 'req-1', 'submitted', :t)"
                ),
                {"id": "b" * 32, "t": T0 if db_target.kind == "postgres" else "2026-01-01 12:00:00.000000"},
            )
    finally:
        await engine.dispose()

    db = await db_target.open()  # migrates 0001 -> head
    try:
        assert await db.current_revision() == head_revision()
        clock = ManualClock(T0)
        job = await JobsRepository(db, clock).get("b" * 32)
        assert job is not None and job.status is JobState.SUBMITTED and job.reservation_id == "a" * 32
        assert job.created_at == T0 and job.parts[0].request_id == "req-1"
        quotas = QuotaService(db, make_settings(), clock)
        usage = await quotas.usage(111, 222)
        assert (usage.requests_used, usage.characters_used, usage.in_flight) == (2, 40, 1)
        async with db.read() as conn:  # 0005 filled the counters from the ledger
            assert await counters.verify(conn) == []
        guild = await quotas.admin.guild_settings(111)
        assert guild.exempt_role_ids == {5} and guild.daily_request_budget == 7
        await quotas.admin.reset_usage(111, 222, actor_id=9)  # uses the new column and table
        assert (await quotas.usage(111, 222)).requests_used == 0
        async with db.read() as conn:
            assert await counters.verify(conn) == []
        assert [e.action for e in await quotas.admin.audit(111)] == ["usage.reset"]
    finally:
        await db.close()


async def test_tables_module_matches_migrations(db: Database) -> None:
    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    async with db.read() as conn:
        assert await conn.run_sync(diff) == []


async def test_upgrade_function_is_idempotent(db_target: DbTarget) -> None:
    assert await upgrade(db_target.url, schema=db_target.schema) == head_revision()
    assert await upgrade(db_target.url, schema=db_target.schema) == head_revision()
    assert await current_revision(db_target.url, schema=db_target.schema) == head_revision()


async def test_two_starts_at_once_both_end_at_head(db_target: DbTarget) -> None:
    first, second = await asyncio.gather(db_target.open(), db_target.open())
    try:
        assert await first.current_revision() == await second.current_revision() == head_revision()
    finally:
        await first.close()
        await second.close()


async def test_sqlite_file_gets_its_folder_and_wal(tmp_path: Path) -> None:
    target = sqlite_target(tmp_path / "deep" / "er")
    db = await target.open()
    try:
        assert (tmp_path / "deep" / "er" / "data" / "bot.db").is_file()
        async with db.read() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() > 0
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await db.close()


@pytest.mark.parametrize(
    ("url", "schema", "needle"),
    [
        ("mysql+aiomysql://x@localhost/db", None, "unsupported database"),
        ("sqlite:///plain.db", None, "sqlite+aiosqlite"),
        ("postgresql://x@localhost/db", None, "postgresql+asyncpg"),
        ("not a url", None, "not a database URL"),
        ("postgresql+asyncpg://x@localhost/db", "bad; drop", "plain SQL identifier"),
    ],
)
async def test_bad_urls_are_refused_clearly(url: str, schema: str | None, needle: str) -> None:
    with pytest.raises(DatabaseUrlError, match=re.escape(needle)):
        await open_database(url, schema=schema)


async def test_downgrades_work_too(db: Database) -> None:
    def down_and_up(connection: Connection) -> list[str | None]:
        config = alembic_config()
        config.attributes["connection"] = connection
        seen = []
        for target in ("0001", "base", "head"):
            (command.downgrade if target != "head" else command.upgrade)(config, target)
            seen.append(MigrationContext.configure(connection).get_current_revision())
        return seen

    async with db.engine.begin() as conn:
        assert await conn.run_sync(down_and_up) == ["0001", None, head_revision()]


def test_quota_policies_has_a_column_per_policy_field() -> None:
    """``POLICY_FIELDS`` lives with the policy; the table spells its columns out."""
    from bot.quotas.policy import POLICY_FIELDS
    from bot.store.tables import quota_policies

    assert set(POLICY_FIELDS) <= set(quota_policies.c.keys())


async def test_0003_turns_the_submitting_marker_into_a_part_state(db_target: DbTarget) -> None:
    """Rows written by 0002's pipeline: a pending part with the marker string (POST maybe
    sent) becomes ``submitting``; a plain pending part and other errors stay as they were."""
    assert await upgrade(db_target.url, schema=db_target.schema, revision="0002") == "0002"
    stamp = T0 if db_target.kind == "postgres" else "2026-01-01 12:00:00.000000"
    engine = create_engine(db_target.url, schema=db_target.schema)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO jobs (id, user_id, user_display, guild_id, text, params, chunk_count, "
                    "status, delivery, delivered, created_at, updated_at) VALUES "
                    "(:id, 222, 'Ann', 111, 'One. Two. Three.', '{}', 3, 'reserved', '{}', :d, :t, :t)"
                ),
                {"id": "c" * 32, "d": False, "t": stamp},
            )
            for idx, status, error in (
                (0, "pending", "submitting: POST sent, answer not recorded"),
                (1, "pending", None),
                (2, "error", "system error"),
            ):
                await conn.execute(
                    text(
                        "INSERT INTO job_parts (job_id, idx, text, status, error, updated_at) "
                        "VALUES (:id, :i, 'x', :s, :e, :t)"
                    ),
                    {"id": "c" * 32, "i": idx, "s": status, "e": error, "t": stamp},
                )
    finally:
        await engine.dispose()

    db = await db_target.open()
    try:
        job = await JobsRepository(db, ManualClock(T0)).get("c" * 32)
        assert job is not None
        assert [(p.status, p.error) for p in job.parts] == [
            (PartState.SUBMITTING, None), (PartState.PENDING, None), (PartState.ERROR, "system error"),
        ]
    finally:
        await db.close()

    def down_to_0002(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")

    engine = create_engine(db_target.url, schema=db_target.schema)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(down_to_0002)
            rows = (await conn.execute(text("SELECT idx, status, error FROM job_parts ORDER BY idx"))).all()
        assert [tuple(r) for r in rows] == [
            (0, "pending", "submitting: POST sent, answer not recorded"), (1, "pending", None),
            (2, "error", "system error"),
        ]
    finally:
        await engine.dispose()


ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_head_is_found_without_alembic() -> None:
    assert shipped_head() == head_revision()


async def test_a_current_database_opens_without_importing_alembic(tmp_path: Path) -> None:
    """What ``chatterbox-bot speak`` does at every start: a real subprocess, a real SQLite file."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    script = (
        "import asyncio, sys\n"
        "from bot.services import Services\n"
        "from bot.store import open_database\n"
        "async def main():\n"
        f"    db = await open_database({url!r})\n"
        "    await db.close()\n"
        "asyncio.run(main())\n"
        "print('alembic' in sys.modules)\n"
    )
    async def run() -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        return out.decode().strip()

    assert await run() == "True"  # a new database is migrated by Alembic
    assert await run() == "False"  # the second start finds it current


async def test_two_databases_migrate_at_once_in_one_process(tmp_path: Path) -> None:
    """Alembic runs in a greenlet on the loop's thread: two migrations started together on one
    loop (two fresh files, so neither waits on the other's database lock) used to deadlock on
    the process-wide Alembic lock. A real subprocess, so a regression fails instead of hanging."""
    urls = [f"sqlite+aiosqlite:///{tmp_path / name}" for name in ("one.db", "two.db")]
    script = (
        "import asyncio\n"
        "from bot.store import upgrade\n"
        "async def main():\n"
        f"    print(*await asyncio.gather(*(upgrade(u) for u in {urls!r})))\n"
        "asyncio.run(main())\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 120)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail("two migrations on one event loop deadlocked")
    assert process.returncode == 0, err.decode()
    assert out.decode().split() == [head_revision(), head_revision()]
