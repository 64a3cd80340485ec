"""Forgetting a member (``/privacy forget-me``) and pruning old jobs (``chatterbox-bot db prune``).

What ``forget_member`` removes, in one transaction:

* every voice the member owns in any server (clip, preview, storage-message reference) and
  every member default of theirs; other members' defaults that pointed at those voices are
  cleared. Presets a moderator added belong to the server and stay.
* their hands-free reading opt-ins (``autoread_members``): from then on nothing they write is
  read aloud, in any server, until they opt in again.
* from their *finished* jobs (delivered or cancelled): the text (job and parts), the voice
  URL, the provider's media URLs, the display name, and the link to them (``user_id`` becomes
  ``FORGOTTEN_USER``, 0). Jobs still running keep what they need to finish; ``forget_me``
  reports how many.
* their results' takes (the text behind Re-roll / Play in voice); the caller drops the cached
  audio made from their voices (``Forgotten.clip_hashes``) and their re-hosted clips
  (``Forgotten.storage_messages``).
* in the audit log: their own voice actions and reports lose their actor and the voice names
  they typed; "may have been charged" notes about their jobs lose their user id.

The money rows (``usage_ledger``) stay, because they are the servers' spending records, but
are anonymised (``user_id`` 0) — except the rows that still set the member's limits, which
keep the member's id until they stop doing so:

* the rows of the member's current quota day (the day of their ``quota_members`` counter row),
  until that day is over: they are what the daily requests and characters count;
* the member's newest counted reservation (the cooldown's start), for as long as a cooldown
  could still run (a day, the longest a server can set, or ``QUOTA_COOLDOWN_SECONDS`` if
  longer);
* reservations not settled yet (a job in flight): its settlement adjusts the member's
  counters, so it settles exactly as it would have.

Why this design: the quota counters (``bot.quotas.counters``) are kept per member and
``counters.verify`` (``chatterbox-bot db verify``) recomputes them from the ledger. Moving
today's rows to user 0 would make the member's counter disagree with the ledger, and
dropping their counter to match would hand them a fresh daily allowance and end their
cooldown — forget-me would be a way around the limits. Keeping the few rows that still count
needs no new table or column, and the counter always equals the ledger's sums; ``verify``
only has to know that user 0 in a server is nobody (Discord ids are never 0; the CLI's user 0
has no server), so anonymised rows count for the server's days and for no member. The
server's per-day counters never change: anonymising moves no row to another day or server.

Once those rows stop counting, the next ``forget_member`` or ``prune_jobs`` anonymises them
(``prune_jobs`` finds them through their job, which forget-me already unlinked) and rebuilds
the member's counter row from what is left — or deletes it when nothing is left.

``prune_jobs`` clears the text and voice URL (and parts' media URLs) of jobs that finished
before a cutoff; the job rows themselves (state, timings, cost link) stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, func, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.config import Settings
from bot.quotas import counters
from bot.quotas.policy import FIELD_LIMITS
from bot.store.database import Database
from bot.store.tables import (
    audit_log,
    autoread_members,
    job_parts,
    jobs,
    quota_members,
    speech_takes,
    usage_ledger,
    voice_defaults,
    voices,
)

FINISHED = ("delivered", "cancelled")
#: The user id of anonymised jobs and money rows (``counters.verify`` counts them for no member).
FORGOTTEN_USER = 0
#: How long a quota day lasts from its start (``bot.quotas.window``).
QUOTA_DAY = timedelta(days=1)
#: Audit details that hold what the member typed (voice names).
_TYPED_DETAILS = ("name", "from", "to")


def longest_cooldown(settings: Settings) -> timedelta:
    """The longest cooldown any member can have: a server's maximum or the bot-wide default."""
    return timedelta(seconds=max(FIELD_LIMITS["cooldown_seconds"][1], settings.quota_cooldown_seconds))


@dataclass(frozen=True, slots=True)
class Forgotten:
    voices: int
    defaults: int
    jobs: int
    open_jobs: int
    #: Money rows anonymised now.
    money_rows: int
    #: Servers where the member's hands-free opt-in was deleted.
    autoread: int = 0
    #: Money rows that still set the member's limits (current quota day, cooldown, in flight):
    #: they keep the member's id until they stop counting (then the next forget-me or prune).
    money_kept: int = 0
    #: (channel id, message id) of the clips re-hosted on Discord, for the caller to delete.
    storage_messages: tuple[tuple[int, int], ...] = ()
    #: SHA-256 of the deleted voices' clips: the caller drops the cached audio made from them
    #: (``AudioCache.forget_clip``).
    clip_hashes: tuple[str, ...] = ()


async def forget_member(
    db: Database, user_id: int, *, now: datetime, cooldown: timedelta = timedelta(days=1)
) -> Forgotten:
    """Forget ``user_id`` everywhere (see the module docstring). ``now`` decides which quota
    day is over; ``cooldown`` is ``longest_cooldown(settings)``."""

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
        autoread = (
            await conn.execute(delete(autoread_members).where(autoread_members.c.user_id == user_id))
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
        money = 0
        for guild_id in await _ledger_guilds(conn, usage_ledger.c.user_id == user_id):
            money += await _anonymise_money(conn, guild_id, user_id, now=now, cooldown=cooldown)
        kept = (
            await conn.execute(
                select(func.count()).select_from(usage_ledger).where(
                    usage_ledger.c.user_id == user_id, usage_ledger.c.guild_id.is_not(None)
                )
            )
        ).scalar_one()
        await _scrub_audit(conn, user_id)
        await conn.execute(delete(speech_takes).where(speech_takes.c.user_id == user_id))
        hashes = tuple(sorted({r.clip_sha256 for r in rows}))
        return Forgotten(
            len(owned), defaults or 0, len(finished), open_jobs, money, autoread or 0, kept, stored, hashes
        )

    return await db.write(write)


async def _ledger_guilds(conn: AsyncConnection, which: ColumnElement[bool]) -> list[int]:
    """The servers of the settled ledger rows ``which`` selects (a member's rows have a server)."""
    led = usage_ledger.c
    return [
        int(r[0])
        for r in await conn.execute(
            select(led.guild_id).where(which, led.guild_id.is_not(None), led.state != "reserved").distinct()
        )
    ]


async def _anonymise_money(
    conn: AsyncConnection,
    guild_id: int,
    user_id: int,
    *,
    now: datetime,
    cooldown: timedelta,
    only: ColumnElement[bool] | None = None,
) -> int:
    """Anonymise the member's settled ledger rows in ``guild_id`` (those ``only`` selects) that
    no longer set their limits, and recount their counter row from the rows left; how many.

    The counter row is locked first, so a reservation of the member waits for this one (or
    this one sees its ledger row): the recount cannot miss it.
    """
    led, m = usage_ledger.c, quota_members.c
    counter = (
        await conn.execute(
            select(m.day).where(m.guild_key == guild_id, m.user_id == user_id).with_for_update()
        )
    ).first()
    keep: list[ColumnElement[bool]] = [led.state == "reserved"]  # in flight: settles as usual
    if counter is not None and counters.as_utc(counter.day) + QUOTA_DAY > now:
        keep.append(led.quota_day >= counter.day)  # the current quota day: the daily limits
    newest = await counters.newest_counted(conn, guild_id, user_id)
    if newest is not None and counters.as_utc(newest) + cooldown > now:
        keep.append(led.created_at >= newest)  # the cooldown's start
    mine = and_(led.guild_id == guild_id, led.user_id == user_id)
    if only is not None:
        mine = and_(mine, only)
    changed = (
        await conn.execute(update(usage_ledger).where(mine, not_(or_(*keep))).values(user_id=FORGOTTEN_USER))
    ).rowcount or 0
    if changed and counter is not None:
        await _recount_member(conn, guild_id, user_id)
    return changed


async def _recount_member(conn: AsyncConnection, guild_id: int, user_id: int) -> None:
    """The member's counter row as the ledger rows still linked to them say (none: no row)."""
    led, m = usage_ledger.c, quota_members.c
    left = (
        await conn.execute(
            select(func.count()).select_from(usage_ledger).where(
                led.guild_id == guild_id, led.user_id == user_id
            )
        )
    ).scalar_one()
    if not left:
        await conn.execute(delete(quota_members).where(m.guild_key == guild_id, m.user_id == user_id))
        return
    await counters.rebuild_member_day(conn, guild_id, user_id)
    newest = await counters.newest_counted(conn, guild_id, user_id)
    await counters.set_member(conn, guild_id, user_id, set_last=True, last_request_at=newest)


async def _scrub_audit(conn: AsyncConnection, user_id: int) -> None:
    """The member's voice actions and reports lose their actor and the names they typed;
    "may have been charged" notes about their jobs lose their user id."""
    a = audit_log.c
    for row in await conn.execute(
        select(a.id, a.details).where(a.actor_id == user_id, a.action.like("voice.%"))
    ):
        details = {k: v for k, v in dict(row.details or {}).items() if k not in _TYPED_DETAILS}
        await conn.execute(update(audit_log).where(a.id == row.id).values(actor_id=None, details=details))
    for row in await conn.execute(select(a.id, a.details).where(a.action == "job.maybe_charged")):
        details = dict(row.details or {})
        if details.get("user_id") == user_id:
            details["user_id"] = None
            await conn.execute(update(audit_log).where(a.id == row.id).values(details=details))


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


async def anonymise_forgotten_money(
    db: Database, *, now: datetime, cooldown: timedelta = timedelta(days=1)
) -> int:
    """The money rows forget-me had to leave linked (they still set the member's limits then)
    and that no longer do: anonymised, counters recounted; how many (``db prune`` runs it).

    A row is a forgotten member's when its job was unlinked from them (``jobs.user_id`` 0) but
    the row still names them; rows of jobs the member made later are theirs and stay."""
    led = usage_ledger.c
    forgotten = led.job_id.in_(select(jobs.c.id).where(jobs.c.user_id == FORGOTTEN_USER))
    which = and_(led.user_id != FORGOTTEN_USER, forgotten)

    async def write(conn: AsyncConnection) -> int:
        pairs = (
            await conn.execute(
                select(led.guild_id, led.user_id)
                .where(which, led.guild_id.is_not(None), led.state != "reserved")
                .distinct()
            )
        ).all()
        total = 0
        for guild_id, user_id in pairs:
            total += await _anonymise_money(
                conn, int(guild_id), int(user_id), now=now, cooldown=cooldown, only=forgotten
            )
        return total

    return await db.write(write)
