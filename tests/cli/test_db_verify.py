"""``chatterbox-bot db verify`` as an operator runs it: a real subprocess on a real SQLite file."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import update

from bot.clock import ManualClock
from bot.quotas import QuotaService
from bot.store import open_database
from bot.store.tables import quota_guild_days
from tests.quotas.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]


async def verify(tmp_path: Path, url: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "QUOTA_"))}
    env.update({"DATABASE_URL": url, "PYTHONPATH": str(ROOT)})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "db", "verify", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_db_verify_agrees_then_reports_drift(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    db = await open_database(url)
    try:
        quotas = QuotaService(db, make_settings(), ManualClock())
        reservation = await quotas.reserve(guild_id=5, user_id=6, requests=2, characters=20)
        await quotas.refund(reservation.id)
        await quotas.reserve(guild_id=5, user_id=7, requests=1, characters=20)
    finally:
        await db.close()
    code, out, err = await verify(tmp_path, url)
    assert (code, out.strip(), err) == (0, "quota counters agree with the usage ledger", "")

    db = await open_database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(update(quota_guild_days).values(requests=99))
    finally:
        await db.close()
    code, out, err = await verify(tmp_path, url)
    assert code == 1
    assert out.startswith("mismatch: quota_guild_days (5, ") and "counter (99, 20" in out
    assert err.strip() == "chatterbox-bot: 1 quota counter(s) differ from the ledger"
