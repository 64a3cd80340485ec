"""Saved voices in /speak through the sandbox and the emulator: both clip hostings, autocomplete,
defaults, revoking, reporting, previews and forgetting."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.clock import ManualClock
from bot.store.tables import audit_log, jobs, speech_takes
from bot.store.tables import voices as voices_table
from bot.voices import Voice
from tests.discord.harness import BOTH_DATABASES, Harness
from tests.discord.speak_support import card_with, emulator_submissions, processing_job, refusal
from tests.discord.voices_support import (
    add_voice,
    answer,
    restart_self_hosted,
    self_hosted,
    voice_clip,
    voices,
)
from tests.sandbox import InteractionHandle, SandboxError

#: On both databases, like the core voice tests (PostgreSQL is skipped when absent).
pytestmark = BOTH_DATABASES

#: A user mention a reporter might type (a snowflake-sized id, so Discord would render it).
PING = "<@123456789012345678>"


async def only_voice(h: Harness, user_id: int) -> Voice:
    [voice] = await h.bot.core.voices.owned(h.guild.id, user_id)
    return voice


async def test_a_saved_voice_is_served_from_a_signed_clip_url(make_harness) -> None:
    async with self_hosted(make_harness) as h:
        base = h.settings.public_base_url
        await add_voice(h, "Narrator")
        voice = await only_voice(h, h.alice.id)
        handle = await h.speak(text="In my saved voice.", voice=voice.ref)
        await card_with(handle, "done")
        [job] = h.emulator.jobs.values()
        assert job.audio_url is not None and job.audio_url.startswith(f"{base}/clips/{voice.id}.wav?exp=")
        assert h.emulator.counts["audio_fetch:200"] == 1
        assert job.reference_bytes == len(await h.bot.core.voices.clip(voice.id) or b"")
        [audio] = h.audio_messages()
        assert "voice: Narrator" in audio.content
        [report] = [b for b in audio.buttons if b["label"] == "Report"]
        assert report["custom_id"].startswith("voices:report:")


async def test_without_a_public_url_clips_live_in_the_storage_channel(harness: Harness) -> None:
    h = harness
    await add_voice(h, "Narrator")
    handle = await h.speak(text="Where does my clip live?", voice="narrator")
    await refusal(handle, "a moderator can pick a channel with `/voices storage`")
    assert emulator_submissions(h) == 0
    storage = h.guild.add_text_channel("voice-clips")
    await answer(await voices(h, "storage", h.mo, channel=storage), "Voice clips will be kept in")

    for n in range(2):
        handle = await h.speak(text=f"Take {n}: my clip lives on Discord now.", voice="narrator")
        await card_with(handle, "done")
    kept = h.messages(storage)
    assert len(kept) == 1  # posted once, fetched again for the second job
    [file] = kept[0].attachments
    voice = await only_voice(h, h.alice.id)
    assert file.filename == f"voice-{voice.id}.wav" and file.data == await h.bot.core.voices.clip(voice.id)
    assert all(j.audio_url == file.url for j in h.emulator.jobs.values())
    assert h.emulator.counts["audio_fetch:200"] == 2

    assert (await h.bot.core.cache.usage())[0] >= 1  # the audio made in that voice is cached
    await answer(await voices(h, "delete", name="narrator"), "Deleted")
    assert h.messages(storage) == []  # the kept copy goes with the voice
    assert (await h.bot.core.cache.usage())[0] == 0  # and so does the audio made from it


async def test_autocomplete_offers_own_shared_and_server_voices_capped_at_25(harness: Harness) -> None:
    h = harness
    empty = await h.sandbox.autocomplete("speak", "voice", "", user=h.bob, text="hi")
    [choice] = await empty.wait_for(lambda x: x.choices)
    assert "No saved voices here yet" in choice["name"]
    handle = await h.speak(user=h.bob, text="hi", voice=choice["value"])
    await refusal(handle, "You have no saved voices you can use here yet")

    await add_voice(h, "Pirate")
    await answer(
        await h.sandbox.slash(
            ["voices", "server-add"],
            user=h.mo,
            name="Announcer",
            clip=voice_clip(h),
            consent=True,
            exaggeration=0.9,
        ),
        "Saved",
    )
    template = dict(await _voice_row(h, "pirate"))
    rows = [
        {**template, "id": f"{n:032x}", "name": f"Extra {n:03d}", "name_key": f"extra {n:03d}"}
        for n in range(300)
    ]  # hundreds of alice's voices, written at once
    await h.bot.core.db.write(lambda conn: conn.execute(voices_table.insert(), rows))

    bob = await (await h.sandbox.autocomplete("speak", "voice", "", user=h.bob, text="hi")).wait_for(
        lambda x: x.choices
    )
    assert [c["name"] for c in bob] == ["Announcer (server voice)"]  # alice's are private
    alice = await (await h.sandbox.autocomplete("speak", "voice", "", user=h.alice, text="hi")).wait_for(
        lambda x: x.choices
    )
    assert len(alice) == 25
    typed = await (await h.sandbox.autocomplete("speak", "voice", "PIR", user=h.alice, text="hi")).wait_for(
        lambda x: x.choices
    )
    assert [c["name"] for c in typed] == ["Pirate (yours, private)"]
    handle = await h.speak(text="Arr, picked from the list.", voice=typed[0]["value"], validate=False)
    await refusal(handle, "`/voices storage`")  # resolved fine; only the storage is missing


async def _voice_row(h: Harness, name_key: str):  # type: ignore[no-untyped-def]
    async with h.bot.core.db.read() as conn:
        return (
            (await conn.execute(select(voices_table).where(voices_table.c.name_key == name_key)))
            .one()
            ._mapping
        )


async def test_voice_problems_in_speak_are_refused_privately(harness: Harness) -> None:
    h = harness
    await add_voice(h, "Mine")
    cases = [
        (
            {"voice": "mine", "clip": voice_clip(h)},
            h.alice,
            "Pick either a saved `voice` or a one-off `clip`",
        ),
        ({"voice": "nobody's"}, h.alice, "There is no voice named “nobody's” here"),
        ({"voice": "mine"}, h.bob, "is private to its owner"),
    ]
    for options, user, words in cases:
        handle = await h.speak(user=user, text="hello there", **options)
        await refusal(handle, words)
        assert all(m.ephemeral or m.deleted for m in handle.messages)
    assert h.messages() == [] and emulator_submissions(h) == 0 and await h.job_rows() == []


async def test_revoked_voice_stops_at_once_and_the_owner_sees_why(harness: Harness) -> None:
    h = harness
    await add_voice(h, "Celebrity")
    await answer(await voices(h, "share", name="celebrity", scope="server"), "is server")
    refused = await answer(
        await voices(h, "revoke", h.bob, name="celebrity", reason="nope"), "Only moderators"
    )
    assert refused.ephemeral
    done = await answer(await voices(h, "revoke", h.mo, name="celebrity", reason="impersonation"), "Revoked")
    assert "Its owner was told by direct message." in done.content
    [(to, dm)] = h.sandbox.state.direct_messages
    assert (
        to == h.alice.id and "“Celebrity” was revoked by the moderators of Test Server (impersonation)" in dm
    )
    for user in (h.bob, h.alice):
        handle = await h.speak(user=user, text="Say it anyway.", voice="celebrity")
        await refusal(handle, "was revoked by this server's moderators (impersonation)")
    listing = await answer(await voices(h, "list"), "Your voices")
    assert "Celebrity — revoked by moderators (impersonation)" in listing.content
    assert emulator_submissions(h) == 0

    # A member who refuses direct messages: the moderator hears that the owner was not told.
    h.sandbox.state.dms_closed.add(h.bob.id)
    await add_voice(h, "Bobs", h.bob)
    closed = await answer(await voices(h, "revoke", h.mo, name="bobs", reason="spam"), "Revoked")
    assert "could not be messaged directly" in closed.content and len(h.sandbox.state.direct_messages) == 1


async def test_report_reaches_the_moderators_who_can_revoke(make_harness) -> None:
    async with self_hosted(make_harness) as h:
        await h.set_alert_channel(h.alerts)
        await add_voice(h, "Mimic")
        voice = await only_voice(h, h.alice.id)
        await card_with(await h.speak(text="Something rude in a borrowed voice.", voice="mimic"), "done")
        [audio] = h.audio_messages()
        [job] = await h.job_rows()
        clicked = await h.sandbox.click(audio, f"voices:report:{job['id']}", user=h.bob)
        await clicked.wait_for(lambda x: x.modal is not None)  # first: why?
        assert clicked.modal is not None and h.messages(h.alerts) == []
        thanks = await h.sandbox.submit_modal(
            clicked, {"kind": ["impersonation"], "details": f"That is **not** her.\n@everyone {PING} listen"}
        )
        await thanks.wait_for_message(lambda m: m.ephemeral and "moderators have been told" in m.content)
        [alert] = h.messages(h.alerts)
        assert f"<@{h.bob.id}> flagged" in alert.content and f"Asked by <@{h.alice.id}>" in alert.content
        assert "“Mimic”" in alert.content and "Something rude in a borrowed voice." in alert.content
        # The reason, on one line, its markup and mentions escaped (nothing pings, nothing is bold).
        [reason] = [line for line in alert.content.splitlines() if line.startswith("Reason:")]
        assert reason.startswith("Reason: Impersonation (a voice used without its owner's consent): “That is")
        assert "\\*\\*not\\*\\*" in reason and "@\u200beveryone" in reason and PING not in reason
        assert alert.pings()["users"] == set() and not alert.pings()["everyone"]
        revoke_id = f"voices:revoke:{voice.id}"
        nope = await h.sandbox.click(alert, revoke_id, user=h.bob)
        await nope.wait_for_message(lambda m: m.ephemeral and "Only moderators" in m.content)
        assert not (await only_voice(h, h.alice.id)).revoked
        await h.sandbox.click(alert, revoke_id, user=h.mo)
        await h.sandbox.wait_for(lambda: "**Revoked** by" in h.messages(h.alerts)[0].content)
        assert (await only_voice(h, h.alice.id)).revoked and h.messages(h.alerts)[0].buttons == []
        reroll = next(b["custom_id"] for b in audio.buttons if b["label"] == "Re-roll")
        again = await h.sandbox.click(audio, reroll, user=h.alice)  # a revoked voice is not re-rolled
        await again.wait_for_message(lambda m: m.ephemeral and "was revoked here" in m.content)
        await h.sandbox.wait_for(lambda: h.sandbox.state.direct_messages)
        assert h.sandbox.state.direct_messages[0][0] == h.alice.id
        handle = await h.speak(text="Again?", voice="mimic")
        await refusal(handle, "was revoked")


async def test_preview_is_made_once_then_free(make_harness) -> None:
    async with self_hosted(make_harness) as h:
        await add_voice(h, "Sampler")
        first = await answer(await voices(h, "preview", name="sampler"), "saved: the next preview is free")
        second = await answer(await voices(h, "preview", name="sampler"), "costs nothing")
        assert first.attachments[0].data == second.attachments[0].data
        assert emulator_submissions(h) == 1 and len(await h.ledger_rows()) == 1


async def test_defaults_choose_the_voice_and_tuning(make_harness) -> None:
    async with self_hosted(make_harness) as h:
        await add_voice(h, "Everyday")
        voice = await only_voice(h, h.alice.id)
        set_ = await answer(
            await voices(h, "default", name="everyday", exaggeration=0.9), "Your /speak defaults"
        )
        assert "Everyday, exaggeration 0.9" in set_.content
        await card_with(await h.speak(text="No voice picked, so my default.", cfg=1.5), "done")
        [job] = h.emulator.jobs.values()
        assert job.audio_url is not None and f"/clips/{voice.id}.wav" in job.audio_url
        assert job.params == {"exaggeration": 0.9, "temperature": 0.8, "cfg": 1.5}
        # Re-roll makes a fresh clip URL for the saved voice (an old signed URL may have expired).
        [audio] = h.audio_messages()
        reroll = next(b["custom_id"] for b in audio.buttons if b["label"] == "Re-roll")
        h.advance_discord_time(3600)
        await card_with(await h.sandbox.click(audio, reroll, user=h.alice), "done")
        second = [j for j in h.emulator.jobs.values() if j is not job]
        assert len(second) == 1 and second[0].audio_url != job.audio_url
        assert f"/clips/{voice.id}.wav" in (second[0].audio_url or "")
        assert h.emulator.counts["audio_fetch:200"] == 2


async def test_forget_me_removes_what_it_says(make_harness) -> None:
    async with self_hosted(make_harness) as h:
        await add_voice(h, "Mine")
        await card_with(await h.speak(text="Remember this sentence.", voice="mine"), "done")
        asked = await answer(await h.sandbox.slash(["privacy", "forget-me"], user=h.alice), "confirm:True")
        assert "This deletes" in asked.content
        assert len(await h.bot.core.voices.owned(h.guild.id, h.alice.id)) == 1
        done = await answer(
            await h.sandbox.slash(["privacy", "forget-me"], user=h.alice, confirm=True), "Done"
        )
        assert "deleted 1 voice(s)" in done.content and "cleared 1 past job(s)" in done.content
        assert await h.bot.core.voices.owned(h.guild.id, h.alice.id) == []
        async with h.bot.core.db.read() as conn:
            [row] = (await conn.execute(select(jobs))).all()
        assert (row.text, row.user_display, row.voice_url, row.user_id) == ("", "", None, 0)
        # The money row stays; today's keeps her id until the quota day is over (it still counts
        # for her daily limits), then the next forget-me or `db prune` anonymises it.
        [ledger] = await h.ledger_rows()
        assert ledger["user_id"] == h.alice.id and ledger["state"] == "committed"
        assert "Today's spending records keep your name" in done.content
        assert (await h.bot.core.cache.usage())[0] == 0  # audio cached from her voice is gone
        async with h.bot.core.db.read() as conn:
            assert (await conn.execute(select(speech_takes))).all() == []  # and her results' texts


async def test_report_reason_is_optional_and_a_bad_one_sends_nothing(harness: Harness) -> None:
    h = harness
    await h.set_alert_channel(h.alerts)
    await card_with(await h.speak(text="Built-in voice, reported anyway."), "done")
    [audio] = h.audio_messages()
    [job] = await h.job_rows()
    report_id = f"voices:report:{job['id']}"

    async def opened() -> InteractionHandle:
        clicked = await h.sandbox.click(audio, report_id, user=h.bob)
        await clicked.wait_for(lambda x: x.modal is not None)
        return clicked

    # Discord's client itself stops a text over the modal's max_length or an unknown choice.
    with pytest.raises(SandboxError, match="takes 0-300 characters"):
        await h.sandbox.submit_modal(await opened(), {"details": "x" * 301})
    # A hand-made client sends them anyway: one clear private message, nothing sent or kept.
    for values, words in (({"details": "x" * 301}, "The reason is 301 characters; at most 300"),
                          ({"kind": ["spam"]}, "not one of the choices")):
        refused = await h.sandbox.submit_modal(await opened(), values, validate=False)
        await refused.wait_for_message(lambda m, w=words: m.ephemeral and w in m.content)
    assert h.messages(h.alerts) == [] and await _reports(h) == []

    thanks = await h.sandbox.submit_modal(await opened(), {})  # both fields are optional
    await thanks.wait_for_message(lambda m: m.ephemeral and "moderators have been told" in m.content)
    [alert] = h.messages(h.alerts)
    assert "\nReason: not given\n" in alert.content and "no saved voice" in alert.content
    [(kind, details)] = await _reports(h)
    assert (kind, details) == (None, "")


async def _reports(h: Harness) -> list[tuple[object, object]]:
    async with h.bot.core.db.read() as conn:
        query = select(audit_log.c.details).where(audit_log.c.action == "voice.report")
        rows = (await conn.execute(query)).all()
    return [(r.details.get("reason"), r.details.get("details")) for r in rows]


async def test_a_saved_voice_job_resumed_after_a_restart_is_named_and_rerolled_in_that_voice(
    make_harness,
) -> None:
    held = ManualClock()  # the emulator keeps the job PROCESSING until the test moves this
    async with self_hosted(make_harness, emulator_clock=held) as h:
        await add_voice(h, "Narrator")
        voice = await only_voice(h, h.alice.id)
        handle = await h.speak(text="Still in my voice after a restart.", voice="narrator")
        job = await processing_job(h)
        await card_with(handle, "Status:** queued")
        assert (await h.job_rows())[0]["voice_url"] == f"voice:{voice.id}"  # which voice, not a link

        bot = await restart_self_hosted(h)
        held.advance(job.duration)
        resume = bot.get_cog("Speak").resume_task
        assert resume is not None and await resume == 1
        [audio] = h.audio_messages()
        assert "voice: Narrator" in audio.content and "voice:" + voice.id not in audio.content

        reroll = next(b["custom_id"] for b in audio.buttons if b["label"] == "Re-roll")
        await h.sandbox.click(audio, reroll, user=h.alice)
        await h.emulator.wait_until(lambda: len(h.emulator.jobs) == 2)
        second = next(j for j in h.emulator.jobs.values() if j is not job)
        assert second.audio_url is not None and f"/clips/{voice.id}.wav?" in second.audio_url
        await h.emulator.wait_until(lambda: second.status != "QUEUED")
        held.advance(second.duration)
        await h.emulator.wait_for_status(second.request_id, "COMPLETED")  # a clip it could not fetch: FAILED
        assert h.emulator.counts["audio_fetch:200"] == 2  # the new bot's /clips route served it
