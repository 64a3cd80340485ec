"""Kill -9 at random points: no job lost, repeated, stranded or left unsettled (both engines).

The full campaign (50+ points per engine, counts printed) is ``make chaos`` (bench/chaos.py);
this runs a few seeded points of the same campaign in ``make test``."""

from __future__ import annotations

from pathlib import Path

from bot.gateway.emulator import GatewayEmulator
from tests.chaos.campaign import run_campaign
from tests.store.dbkit import DbTarget

POINTS = 8


async def test_killed_pipelines_lose_and_repeat_nothing(
    db_target: DbTarget, faulty_emulator: GatewayEmulator, tmp_path: Path
) -> None:
    """Kills at seeded points, while the gateway itself answers 500, drops connections (before
    and after taking a POST), answers slowly and fails jobs, at seeded rates."""
    emulator = faulty_emulator
    audit = await run_campaign(db=db_target.url, schema=db_target.schema, emulator=emulator,
                               workdir=tmp_path, points=POINTS, seed=20261201)
    print(audit.summary(), dict(emulator.counts))
    faults = {name: n for name, n in emulator.counts.items() if name.endswith((":500", ":dropped"))}
    assert faults, emulator.counts  # the gateway's faults did happen (seeded)
    assert audit.problems == [], audit.summary()
    assert POINTS < audit.jobs <= POINTS * 2 + 1  # a kill may come before a worker's reservations
    assert audit.posted >= 1  # the final worker's own job at least
    assert audit.posted + audit.failed + audit.uncertain == audit.jobs
