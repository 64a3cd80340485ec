"""The voice library on both databases: consent, names, limits, sharing, revoking, defaults."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from bot.clock import ManualClock
from bot.store import Database
from bot.store.tables import audit_log, voices
from bot.voices import AUTOCOMPLETE_LIMIT, VoiceError, VoiceLibrary, VoiceUnavailable
from tests.quotas.conftest import make_settings
from tests.voices.conftest import ALICE, BOB, GUILD, MO, clip_of


async def _row(db: Database) -> Any:
    async with db.read() as conn:
        return (await conn.execute(select(voices))).one()._mapping


async def _count(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(voices))).scalar_one()


async def test_a_voice_is_stored_with_its_clip_hash_and_consent(library: VoiceLibrary, db: Database) -> None:
    clip = clip_of()
    voice = await library.add(GUILD, ALICE, "  Narrator  Voice ", clip, consent=True)
    assert (voice.name, voice.scope, voice.owner_id) == ("Narrator Voice", "private", ALICE)
    assert voice.clip_sha256 == clip.sha256 and await library.clip(voice.id) == clip.wav
    async with db.read() as conn:
        [entry] = (await conn.execute(select(audit_log).where(audit_log.c.action == "voice.add"))).all()
        stored = (await conn.execute(select(voices.c.consent_by, voices.c.consent_at))).one()
    assert (
        entry.actor_id == ALICE and entry.details["consent"] is True and entry.details["voice_id"] == voice.id
    )
    assert stored.consent_by == ALICE and stored.consent_at is not None


@pytest.mark.parametrize(
    ("name", "consent", "code"),
    [
        ("fine", False, "no_consent"),
        ("   ", True, "name_empty"),
        ("x" * 33, True, "name_long"),
        ("**bold**", True, "name_markup"),
        ("<@123>", True, "name_markup"),
        ("id:abc", True, "name_markup"),
        ("taken", True, "name_taken"),
    ],
)
async def test_bad_adds_are_refused_and_change_nothing(
    library: VoiceLibrary, db: Database, name: str, consent: bool, code: str
) -> None:
    await library.add(GUILD, ALICE, "Taken", clip_of(), consent=True)
    with pytest.raises(VoiceError) as caught:
        await library.add(GUILD, ALICE, name, clip_of(), consent=consent)
    assert caught.value.code == code and caught.value.user_message
    assert await _count(db) == 1


async def test_limits_per_member_per_server_and_who_may_clone(library: VoiceLibrary, db: Database) -> None:
    for n in range(3):
        await library.add(GUILD, ALICE, f"a{n}", clip_of(), consent=True)
    with pytest.raises(VoiceError, match="limit here is 3") as caught:
        await library.add(GUILD, ALICE, "a3", clip_of(), consent=True)
    assert caught.value.code == "member_full"
    for n in range(3):
        await library.add(GUILD, BOB, f"b{n}", clip_of(), consent=True)
    with pytest.raises(VoiceError) as caught:
        await library.add(GUILD, MO, "m", clip_of(), consent=True, preset=True, is_moderator=True)
    assert caught.value.code == "server_full"
    await library.delete(GUILD, BOB, "b2")
    await library.set_limits(GUILD, actor_id=MO, clone_policy="moderators")
    with pytest.raises(VoiceError) as caught:
        await library.add(GUILD, BOB, "b2", clip_of(), consent=True)
    assert caught.value.code == "clone_forbidden"
    await library.add(GUILD, MO, "mod voice", clip_of(), consent=True, is_moderator=True)
    assert await _count(db) == 6
    limits = await library.limits(GUILD)
    assert (limits.max_per_member, limits.max_per_server, limits.clone_policy) == (3, 6, "moderators")


async def test_private_until_shared_and_presets_for_everyone(library: VoiceLibrary) -> None:
    mine = await library.add(GUILD, ALICE, "Mine", clip_of(), consent=True)
    await library.add(
        GUILD,
        MO,
        "Announcer",
        clip_of(),
        consent=True,
        preset=True,
        is_moderator=True,
        tuning=(0.9, None, 0.3),
    )
    assert [v.name for v in await library.usable(GUILD, BOB)] == ["Announcer"]
    with pytest.raises(VoiceUnavailable) as caught:
        await library.resolve(GUILD, BOB, "mine")
    assert caught.value.code == "private"
    with pytest.raises(VoiceUnavailable) as caught:
        await library.resolve(GUILD, BOB, mine.ref)
    assert caught.value.code == "private"
    await library.share(GUILD, ALICE, "MINE", "server")
    assert [v.name for v in await library.usable(GUILD, BOB)] == ["Announcer", "Mine"]
    assert (await library.resolve(GUILD, BOB, "mine")).id == mine.id
    preset = await library.resolve(GUILD, BOB, "announcer")
    assert preset.is_preset and (preset.exaggeration, preset.cfg) == (0.9, 0.3)
    # Another server sees none of it.
    assert await library.usable(GUILD + 1, ALICE) == []
    with pytest.raises(VoiceUnavailable):
        await library.resolve(GUILD + 1, ALICE, "mine")


async def test_own_voice_wins_over_a_shared_one_of_the_same_name(library: VoiceLibrary) -> None:
    bobs = await library.add(GUILD, BOB, "Pirate", clip_of(), consent=True)
    await library.share(GUILD, BOB, "pirate", "server")
    alices = await library.add(GUILD, ALICE, "Pirate", clip_of(pitch=330), consent=True)
    assert (await library.resolve(GUILD, ALICE, "pirate")).id == alices.id
    assert (await library.resolve(GUILD, ALICE, bobs.ref)).id == bobs.id
    assert {v.id for v in await library.usable(GUILD, ALICE, "pi")} == {alices.id, bobs.id}


async def test_revoked_voice_stops_at_once(library: VoiceLibrary) -> None:
    voice = await library.add(GUILD, ALICE, "Celebrity", clip_of(), consent=True)
    await library.share(GUILD, ALICE, "Celebrity", "server")
    revoked = await library.revoke(GUILD, MO, "celebrity", owner_id=ALICE, reason="impersonation")
    assert revoked.revoked and revoked.revoke_reason == "impersonation"
    for who in (ALICE, BOB):
        with pytest.raises(VoiceUnavailable, match="impersonation") as caught:
            await library.resolve(GUILD, who, "celebrity")
        assert caught.value.code == "revoked"
        assert await library.usable(GUILD, who) == []
    assert await library.clip(voice.id) is None
    with pytest.raises(VoiceError) as caught:
        await library.revoke(GUILD, MO, "celebrity", owner_id=None, reason="again")
    assert caught.value.code == "already_revoked"
    with pytest.raises(VoiceUnavailable):
        await library.share(GUILD, ALICE, "celebrity", "server")


async def test_rename_and_delete(library: VoiceLibrary, db: Database) -> None:
    await library.add(GUILD, ALICE, "Old", clip_of(), consent=True)
    await library.add(GUILD, ALICE, "Other", clip_of(), consent=True)
    with pytest.raises(VoiceError) as caught:
        await library.rename(GUILD, ALICE, "old", "OTHER")
    assert caught.value.code == "name_taken"
    renamed = await library.rename(GUILD, ALICE, "old", "New")
    assert renamed.name == "New"
    await library.set_defaults(GUILD, ALICE, voice="new", exaggeration=0.7)
    with pytest.raises(VoiceUnavailable):
        await library.delete(GUILD, BOB, "new")  # not bob's
    await library.delete(GUILD, ALICE, "new")
    defaults = await library.defaults(GUILD, ALICE)
    assert defaults.voice is None and defaults.exaggeration == 0.7
    assert await _count(db) == 1


async def test_defaults_and_a_default_that_became_unusable(library: VoiceLibrary) -> None:
    await library.add(GUILD, BOB, "Shared", clip_of(), consent=True)
    await library.share(GUILD, BOB, "shared", "server")
    got = await library.set_defaults(GUILD, ALICE, voice="shared", temperature=0.3, cfg=1.1)
    assert got.voice is not None and got.voice.name == "Shared"
    assert (got.exaggeration, got.temperature, got.cfg) == (None, 0.3, 1.1)
    await library.share(GUILD, BOB, "shared", "private")
    later = await library.defaults(GUILD, ALICE)
    assert later.voice is None and later.voice_problem is not None and "private" in later.voice_problem
    cleared = await library.set_defaults(GUILD, ALICE, voice=None, clear_voice=True)
    assert cleared.voice is None and cleared.voice_problem is None and cleared.temperature == 0.3


async def test_autocomplete_with_hundreds_of_voices_is_capped_and_indexed(
    db: Database, clock: ManualClock
) -> None:
    library = VoiceLibrary(db, make_settings(voices_per_member=1000, voices_per_server=1000), clock)
    clip = clip_of(0.1)
    await library.add(GUILD, ALICE, "voice 000", clip, consent=True)
    template = dict(await _row(db))
    rows = []
    for n in range(1, 600):  # hundreds more, written in one statement to keep the test fast
        owner = ALICE if n % 3 == 0 else BOB
        scope = "server" if n % 2 == 0 and owner == BOB else "private"
        rows.append({**template, "id": f"{n:032x}", "owner_id": owner, "owner_key": owner,
                     "name": f"voice {n:03d}", "name_key": f"voice {n:03d}", "scope": scope})
    await db.write(lambda conn: conn.execute(voices.insert(), rows))
    everything = await library.usable(GUILD, ALICE)
    assert len(everything) == AUTOCOMPLETE_LIMIT
    assert [v.name for v in everything] == sorted(v.name for v in everything)
    typed = await library.usable(GUILD, ALICE, "VOICE 1")
    assert typed and all(v.name.startswith("voice 1") for v in typed) and len(typed) <= AUTOCOMPLETE_LIMIT
    assert all(v.owner_id == ALICE or v.scope == "server" for v in typed)
    assert await library.usable(GUILD, 999, "zzz") == []
    if db.is_sqlite:
        from sqlalchemy.dialects import sqlite

        from bot.voices.library import usable_query

        sql = usable_query(GUILD, ALICE, "voice 1").compile(
            dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
        )
        async with db.read() as conn:
            plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")).all()
        details = " ".join(str(row[-1]) for row in plan)
        assert "USING INDEX ix_voices_guild_name" in details and "TEMP B-TREE" not in details, plan


async def test_migration_0007_adds_the_tables_and_keeps_existing_data(db_target) -> None:  # type: ignore[no-untyped-def]
    from bot.store import upgrade
    from bot.store.engine import create_engine
    from bot.store.migrate import head_revision
    from bot.store.tables import guild_settings

    assert await upgrade(db_target.url, schema=db_target.schema, revision="0008") == "0008"
    engine = create_engine(db_target.url, schema=db_target.schema)
    try:
        async with engine.begin() as conn:
            await conn.execute(guild_settings.insert().values(guild_id=GUILD, alert_channel_id=42))
    finally:
        await engine.dispose()
    db = await db_target.open()
    try:
        assert await db.current_revision() == head_revision()  # 0007 and every later one ran
        async with db.read() as conn:
            kept = (await conn.execute(select(guild_settings.c.alert_channel_id))).scalar_one()
        assert kept == 42
        library = VoiceLibrary(db, make_settings(), ManualClock())
        voice = await library.add(GUILD, ALICE, "After upgrade", clip_of(), consent=True)
        assert (await library.resolve(GUILD, ALICE, "after upgrade")).id == voice.id
    finally:
        await db.close()
