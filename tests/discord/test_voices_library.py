"""/voices through the Discord sandbox: add with consent, list, share, rename, delete, limits."""

from __future__ import annotations

from bot.audio import wav_info
from tests.discord.harness import BOTH_DATABASES, Harness
from tests.discord.voices_support import add_voice, answer, voice_clip, voices
from tests.store.dbkit import DbTarget

#: On both databases, like the core voice tests (PostgreSQL is skipped when absent).
pytestmark = BOTH_DATABASES


async def test_add_plays_back_the_stored_clip_and_list_shows_it(harness: Harness, bot_db: DbTarget | None
                                                                ) -> None:
    h = harness
    assert h.bot.core.db.dialect == ("postgresql" if bot_db is not None else "sqlite")
    saved = await add_voice(h, "Narrator")
    [played] = saved.attachments
    info = wav_info(played.data)
    assert (info.sample_rate, info.channels) == (24_000, 1) and 5.9 < info.duration < 6.1
    [voice] = await h.bot.core.voices.owned(h.guild.id, h.alice.id)
    assert voice.name == "Narrator" and voice.scope == "private"
    assert await h.bot.core.voices.clip(voice.id) == played.data
    listing = await answer(await voices(h, "list"), "Your voices")
    assert "Narrator — private" in listing.content
    assert h.messages() == []  # nothing public


async def test_each_bad_add_gets_one_private_message_and_changes_nothing(make_harness) -> None:
    from tests.voices.test_clips import wav

    async with make_harness(settings={"voices_per_member": 2}) as h:
        await add_voice(h, "Taken")
        sandbox = h.sandbox
        forty_mb = sandbox.attachment(b"\x00" * (40 * 1024 * 1024), "huge.wav", "audio/wav")
        twenty_minutes = sandbox.attachment(wav((1200.0, 0), rate=8000, channels=1, width=1), "long.wav")
        renamed_text = sandbox.attachment(b"just my shopping list\n" * 50, "voice.wav", "audio/wav")
        cases = [
            ({"name": "taken"}, "You already have a voice named “taken”"),
            ({"name": "   "}, "The voice needs a name"),
            ({"name": "x" * 40}, "the limit is 32"),
            ({"name": "**loud** <@1>"}, "no markup, mentions or emoji"),
            ({"name": "No consent", "consent": False}, "Nothing was saved: set `consent` to True"),
            ({"name": "Huge", "clip": forty_mb}, "The voice clip is 40 MB; the limit is 10 MB"),
            ({"name": "Long", "clip": twenty_minutes}, "1200 s long; the limit is 30 s"),
            ({"name": "Text", "clip": renamed_text}, "not an audio clip the bot can read"),
            ({"name": "Quiet", "clip": sandbox.attachment(wav((8.0, 0)), "quiet.wav")}, "silent"),
            (
                {"name": "Short", "clip": sandbox.attachment(wav((2.0, 8000)), "short.wav")},
                "only 2.0 s of speech",
            ),
        ]
        for options, words in cases:
            full = {"clip": voice_clip(h), "consent": True, **options}
            handle = await h.sandbox.slash(["voices", "add"], user=h.alice, validate=False, options=full)
            message = await answer(handle, words)
            assert "ffmpeg" not in message.content.lower()
            assert [m for m in handle.messages if not m.deleted and m.content] == [message], options
        assert [v.name for v in await h.bot.core.voices.owned(h.guild.id, h.alice.id)] == ["Taken"]
        await add_voice(h, "Second")
        full = await answer(
            await voices(h, "add", name="Third", clip=voice_clip(h), consent=True), "limit here is 2"
        )
        assert full.ephemeral and len(await h.bot.core.voices.owned(h.guild.id, h.alice.id)) == 2
        assert h.messages() == [] and h.emulator.counts["submit"] == 0


async def test_share_rename_delete_and_moderator_limits(harness: Harness) -> None:
    h = harness
    await add_voice(h, "Duet")
    await answer(await voices(h, "share", name="duet", scope="server"), "everyone in this server")
    bob_sees = await answer(await voices(h, "list", h.bob), "Server and shared voices")
    assert "Duet (shared by a member)" in bob_sees.content
    await answer(await voices(h, "rename", name="duet", new_name="Solo"), "Renamed to “Solo”")
    nope = await answer(await voices(h, "delete", h.bob, name="solo"), "You have no voice named")
    assert nope.ephemeral
    await answer(await voices(h, "limits", h.mo, who="moderators", per_member=1), "moderators only")
    blocked = await answer(
        await voices(h, "add", h.bob, name="Mine", clip=voice_clip(h), consent=True),
        "only moderators may add voices",
    )
    assert blocked.ephemeral
    denied = await h.sandbox.slash(
        ["voices", "limits"], user=h.bob, validate=False, options={"per_member": 50}
    )
    await answer(denied, "Only moderators")
    assert (await h.bot.core.voices.limits(h.guild.id)).max_per_member == 1
    await answer(await voices(h, "delete", name="solo"), "Deleted “Solo”")
    assert await h.bot.core.voices.owned(h.guild.id, h.alice.id) == []
