"""Forgetting a member (``/privacy forget-me``) and pruning old jobs (``chatterbox-bot db prune``).

What ``forget_member`` removes, in one transaction:

* every voice the member owns in any server (clip, preview, storage-message reference) and
  every member default of theirs; other members' defaults that pointed at those voices are
  cleared. Presets a moderator added belong to the server and stay.
* from their *finished* jobs (delivered or cancelled): the text (job and parts), the voice
  URL, the provider's media URLs, the display name, and the link to them (``user_id`` becomes
  0). Jobs still running keep what they need to finish; ``forget_me`` reports how many.
* the money rows (``usage_ledger``) stay, because they are the server's spending record, but
  are anonymised (``user_id`` 0). A consequence: the member's usage of the current quota day
  no longer counts against them.
* the member's voice actions in the audit log lose their actor; their results' takes (the
  text behind Re-roll / Play in voice) are deleted, and the caller drops the cached audio made
  from their voices (``Forgotten.clip_hashes``).

``prune_jobs`` clears the text and voice URL (and parts' media URLs) of jobs that finished
before a cutoff; the job rows themselves (state, timings, cost link) stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.database import Database
from bot.store.tables import (
    audit_log,
    job_parts,
    jobs,
    speech_takes,
    usage_ledger,
    voice_defaults,
    voices,
)

FINISHED = ("delivered", "cancelled")
FORGOTTEN_USER = 0


@dataclass(frozen=True, slots=True)
class Forgotten:
    voices: int
    defaults: int
    jobs: int
    open_jobs: int
    money_rows: int
    #: (channel id, message id) of the clips re-hosted on Discord, for the caller to delete.
    storage_messages: tuple[tuple[int, int], ...] = ()
    #: SHA-256 of the deleted voices' clips: the caller drops the cached audio made from them
    #: (``AudioCache.forget_clip``).
    clip_hashes: tuple[str, ...] = ()


async def forget_member(db: Database, user_id: int) -> Forgotten:
    async def write(conn: AsyncConnection) -> Forgotten:
        rows = list(
            await conn.execute(
                select(
                    voices.c.id,
                    voices.c.clip_sha256,
                    voices.c.storage_channel_id,
                    voices.c.storage_message_id,
                ).where(voices.c.owner_id == user_id, voices.c.scope != "preset")
            )
        )
        owned = [r.id for r in rows]
        stored = tuple(
            (r.storage_channel_id, r.storage_message_id)
            for r in rows
            if r.storage_channel_id is not None and r.storage_message_id is not None
        )
        if owned:
            await conn.execute(
                update(voice_defaults).where(voice_defaults.c.voice_id.in_(owned)).values(voice_id=None)
            )
            await conn.execute(delete(voices).where(voices.c.id.in_(owned)))
        defaults = (
            await conn.execute(delete(voice_defaults).where(voice_defaults.c.user_id == user_id))
        ).rowcount
        finished = [
            r[0]
            for r in await conn.execute(
                select(jobs.c.id).where(jobs.c.user_id == user_id, jobs.c.status.in_(FINISHED))
            )
        ]
        if finished:
            await conn.execute(
                update(job_parts).where(job_parts.c.job_id.in_(finished)).values(text="", media_url=None)
            )
            await conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(finished))
                .values(text="", voice_url=None, user_display="", user_id=FORGOTTEN_USER)
            )
        open_jobs = (
            await conn.execute(select(func.count()).select_from(jobs).where(jobs.c.user_id == user_id))
        ).scalar_one()
        money = (
            await conn.execute(
                update(usage_ledger)
                .where(usage_ledger.c.user_id == user_id, usage_ledger.c.state != "reserved")
                .values(user_id=FORGOTTEN_USER)
            )
        ).rowcount
        await conn.execute(
            update(audit_log)
            .where(audit_log.c.actor_id == user_id, audit_log.c.action.like("voice.%"))
            .values(actor_id=None)
        )
        await conn.execute(delete(speech_takes).where(speech_takes.c.user_id == user_id))
        hashes = tuple(sorted({r.clip_sha256 for r in rows}))
        return Forgotten(len(owned), defaults or 0, len(finished), open_jobs, money or 0, stored, hashes)

    return await db.write(write)


async def prune_jobs(db: Database, *, finished_before: datetime) -> int:
    """Clear text and voice URLs of jobs finished before ``finished_before``; how many."""

    async def write(conn: AsyncConnection) -> int:
        old = [
            r[0]
            for r in await conn.execute(
                select(jobs.c.id).where(
                    jobs.c.status.in_(FINISHED),
                    jobs.c.updated_at < finished_before,
                    or_(jobs.c.text != "", jobs.c.voice_url.is_not(None)),
                )
            )
        ]
        if not old:
            return 0
        await conn.execute(
            update(job_parts).where(and_(job_parts.c.job_id.in_(old))).values(text="", media_url=None)
        )
        await conn.execute(update(jobs).where(jobs.c.id.in_(old)).values(text="", voice_url=None))
        return len(old)

    return await db.write(write)
