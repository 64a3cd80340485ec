"""With sharding, a process's reconciler takes only the jobs of its own shards' guilds."""

from __future__ import annotations

from bot.clock import ScaledClock
from bot.gateway.emulator import GatewayEmulator
from bot.services import Services
from bot.speech.events import ResumedJob, SpeechResult
from bot.store import JobsRepository, JobState, NewJob
from tests.speech.support import speech_settings
from tests.store.dbkit import DbTarget, db_target

__all__ = ["db_target"]


def guild_on_shard(shard: int, count: int, n: int = 1) -> int:
    return ((n * count + shard) << 22) | 12345  # Discord: shard = (guild_id >> 22) % count


async def test_a_process_claims_only_its_shards_jobs(
    db_target: DbTarget, emulator: GatewayEmulator, scaled_clock: ScaledClock
) -> None:
    db = await db_target.open()
    try:
        settings = speech_settings(emulator, db_target.url, discord_shard_count=3, discord_shard_ids="1,2")
        async with await Services.open(settings, clock=scaled_clock, database=db) as services:
            repo = JobsRepository(db, scaled_clock)
            made: dict[int | None, str] = {}
            for guild in (guild_on_shard(0, 3), guild_on_shard(1, 3), guild_on_shard(2, 3, n=5), None):
                job = NewJob(user_id=1, user_display="ann", guild_id=guild, channel_id=7, text="Hi.",
                             parts=["Hi."], delivery={"kind": "file", "channel_id": 7})
                await repo.create(job)  # left by a vanished process: no owner, never sent
                made[guild] = job.id

            async def deliver(job: ResumedJob, result: SpeechResult) -> None:
                raise AssertionError("nothing here has audio")

            assert await services.speech.resume_pending(deliver, wait=True) == 2
            states = {guild: (await repo.get(job_id)).status for guild, job_id in made.items()}  # type: ignore[union-attr]
    finally:
        await db.close()
    # Shards 1 and 2 were ours: their jobs ran (POSTed now: a pending part was never sent).
    assert states[guild_on_shard(1, 3)] is JobState.DELIVERED
    assert states[guild_on_shard(2, 3, n=5)] is JobState.DELIVERED
    # Shard 0's job and the guild-less one belong to the process that runs shard 0.
    assert states[guild_on_shard(0, 3)] is JobState.RESERVED
    assert states[None] is JobState.RESERVED
