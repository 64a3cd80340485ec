"""/speak end to end: the real bot in the Discord sandbox, the gateway emulator, SQLite.

Each test drives the bot as a member would (a slash command, a button) and checks what the
member and the channel see, what the emulator received and what the database recorded.
"""

from __future__ import annotations

from bot.audio import safe_filename
from bot.gateway.emulator import Outcome
from tests.discord.harness import Harness
from tests.discord.speak_support import (
    card_with,
    emulator_submissions,
    make_wav,
    refusal,
    statuses,
)
from tests.sandbox import Overwrite, Permission


async def test_a_member_gets_the_wav_the_emulator_made(harness: Harness) -> None:
    h = harness
    typed = "Hello @everyone and <@1>, this is the emulator speaking."
    text = "Hello everyone and someone, this is the emulator speaking."  # as cleaned up to be spoken
    handle = await h.speak(text=typed, exaggeration=0.7, temperature=0.4, cfg=1.2)

    card = await card_with(handle, "done")
    [audio] = h.audio_messages()
    [job] = h.emulator.jobs.values()
    assert job.text == text and job.params == {"exaggeration": 0.7, "temperature": 0.4, "cfg": 1.2}
    stored = audio.attachments[0]
    assert stored.data == job.media_bytes
    assert stored.filename == safe_filename(text, "wav") and stored.content_type == "audio/wav"
    # Who asked, how long, which settings; and the quoted text pings nobody.
    assert h.alice.mention in audio.content and " s of speech" in audio.content
    assert "exaggeration 0.7 · temperature 0.4 · cfg 1.2 · default voice" in audio.content
    for message in (audio, card):
        assert message.pings() == {"users": set(), "roles": set(), "everyone": False}
    assert not card.ephemeral and card.buttons == []  # the Cancel button is gone at the end
    [row] = await h.job_rows()
    assert row["delivered"] is True and row["status"] == "delivered"
    [ledger] = await h.ledger_rows()
    assert (ledger["state"], ledger["committed_requests"]) == ("committed", 1)


async def test_the_card_is_one_message_edited_through_the_states(harness: Harness) -> None:
    h = harness
    handle = await h.speak(text="One card, many edits.")
    card = await card_with(handle, "done")

    seen = statuses(card)
    assert seen[0] == "quota ok"
    # The cost is the requester's business: said privately, once, and on no public message.
    [cost] = [m for m in handle.messages if m.ephemeral and "$" in m.content]
    assert cost.content.startswith("This /speak uses 1 request of your quota ($0.01)")
    assert not any("$" in m.content for m in h.messages()) and not any("$" in r.content for r in card.history)
    assert seen[-1].startswith("done: ") and seen[-1].endswith("posted below")
    kinds = [s.split(":")[0].split(" ")[0].rstrip("…") for s in seen]
    assert kinds.index("quota") < kinds.index("queued") < kinds.index("processing") < kinds.index("done")
    assert card.history[0].flags & 1 << 7  # it started as the "thinking" placeholder
    # While running, the card carried a Cancel button for this job.
    running = next(r for r in card.history if "queued" in r.content)
    [button] = [c for row in running.components for c in row["components"]]
    assert button["label"] == "Cancel" and button["custom_id"].startswith("speak:cancel:")
    assert [m.id for m in h.messages()] == [card.id, h.audio_messages()[0].id]


async def test_a_voice_clip_reaches_the_emulator_as_its_cdn_url(harness: Harness) -> None:
    h = harness
    clip = h.sandbox.attachment(make_wav(1.5), "my voice.wav", "audio/wav")
    handle = await h.speak(text="Now in my own voice.", clip=clip)

    await card_with(handle, "done")
    [job] = h.emulator.jobs.values()
    assert job.audio_url == clip.url
    assert job.reference_bytes == clip.size  # the emulator fetched it from the sandbox CDN
    assert h.emulator.counts["audio_fetch:200"] == 1
    # The bot downloaded it too, to check it is audio of an acceptable length.
    assert len([p for p in h.sandbox.cdn_requests if p.endswith("/my voice.wav")]) == 2
    assert "voice: my voice.wav" in h.audio_messages()[0].content


async def test_bad_options_are_refused_privately_and_nothing_is_charged(make_harness) -> None:
    settings = {"chatterbox_max_text_chars": 60, "voice_ref_max_bytes": 200_000, "voice_ref_max_seconds": 2.0}
    async with make_harness(settings=settings) as h:
        sandbox = h.sandbox
        cases = [
            ({"text": "hi", "exaggeration": 1.5}, "`exaggeration` must be between 0 and 1"),
            ({"text": "hi", "temperature": 0.05}, "`temperature` must be between 0.1 and 1"),
            ({"text": "hi", "cfg": 2.5}, "`cfg` must be between 0 and 2"),
            ({"text": "   "}, "The text is empty"),
            ({"text": "ab" * 31}, "the limit is 60"),
            ({"text": "[laugh] ~~~~"}, "nothing to speak"),
            ({"text": "hi", "output": "loudly"}, "`output` must be one of file, voice, both"),
            ({"text": "hi", "clip": sandbox.attachment(b"just some notes", "notes.txt", "text/plain")},
             "must be an audio file"),
            ({"text": "hi", "clip": sandbox.attachment(make_wav(5), "long.wav", "audio/wav")},
             "The voice clip is 235 KB; the limit is 195 KB"),
            ({"text": "hi", "clip": sandbox.attachment(make_wav(3), "slow.wav", "audio/wav")},
             "The voice clip is 3.0 s long; the limit is 2 s"),
            ({"text": "hi", "clip": sandbox.attachment(b"RIFF....WAVEjunk", "fake.wav", "audio/wav")},
             "The voice clip can't be used"),
        ]
        for options, expected in cases:
            handle = await h.speak(validate=False, **options)
            await refusal(handle, expected)
            # After a deferral the public "thinking" message is gone; nothing public remains.
            assert all(m.deleted or m.ephemeral for m in handle.messages), options
        assert h.messages() == []
        assert emulator_submissions(h) == 0
        assert await h.ledger_rows() == [] and await h.job_rows() == []


async def test_an_exhausted_quota_says_when_it_resets(make_harness) -> None:
    async with make_harness(settings={"quota_requests_per_day": 1}) as h:
        await card_with(await h.speak(text="The first one is fine."), "done")

        handle = await h.speak(text="The second one is over the limit.")
        message = await refusal(handle, "resets")
        usage = await h.bot.core.quotas.usage(h.guild.id, h.alice.id)
        stamp = int(usage.resets_at.timestamp())
        assert message.content.count("resets") == 1 and f"(at <t:{stamp}:t> your time)" in message.content
        assert len(await h.ledger_rows()) == 1 and emulator_submissions(h) == 1
        assert len(h.audio_messages()) == 1


async def test_out_of_credit_tells_the_member_and_alerts_moderators_once(harness: Harness) -> None:
    h = harness
    await h.set_alert_channel(h.alerts)
    h.emulator.set_balance(0)

    first = await h.speak(text="There is no money left.")
    card = await card_with(first, "failed")
    [row] = await h.job_rows()
    assert card.content.endswith(f"**Status:** failed (error id `{row['id'][:8]}`)")  # public: the result
    told = await refusal(first, "out of credit")  # private: why, the money, the error id; once
    assert "This server's moderators have been told." in told.content
    assert "Nothing was charged" in told.content
    assert f"(error id `{row['id'][:8]}`)" in told.content
    assert [m.content for m in first.messages if m.ephemeral and "failed" in m.content] == [told.content]
    alert = await h.sandbox.wait_for_message(h.alerts)

    second = await h.speak(h.bob, text="Is there money now?")
    assert "moderators have been told" in (await refusal(second, "out of credit")).content
    third = await h.speak(text="And now?")
    await refusal(third, "out of credit")

    assert h.sandbox.messages(h.alerts) == [alert]
    assert "out of credit" in alert.content and "402" not in alert.content
    assert h.emulator.counts["submit:402"] == 1  # paused: the later ones were never sent
    ledger = await h.ledger_rows()
    assert [(r["state"], r["committed_requests"]) for r in ledger] == [("refunded", 0)]
    assert h.audio_messages() == []


async def test_out_of_credit_without_an_alert_channel_is_logged(harness: Harness, caplog) -> None:
    h = harness
    h.emulator.set_balance(0)
    with caplog.at_level("WARNING", logger="cogs"):
        handle = await h.speak(text="No money and nobody to tell.")
        await card_with(handle, "failed")
        answer = await refusal(handle, "out of credit")
    assert "moderators" not in answer.content  # nobody was told here, so it does not say so
    assert "no moderator alert channel is set" in caplog.text and "out of credit" in caplog.text
    assert h.sandbox.messages(h.alerts) == []
    later = await refusal(await h.speak(h.bob, text="Still nobody?"), "out of credit")
    assert "moderators" not in later.content


async def test_an_alert_that_could_not_be_posted_is_not_called_told(harness: Harness, caplog) -> None:
    h = harness
    closed = h.guild.add_text_channel(
        "closed-staff", overwrites={h.guild.bot_role: Overwrite(deny=Permission.SEND_MESSAGES)}
    )
    await h.set_alert_channel(closed)  # set, but the bot cannot post there
    h.emulator.set_balance(0)
    with caplog.at_level("WARNING", logger="cogs"):
        first = await h.speak(text="No money, and the alert bounces.")
        await card_with(first, "failed")
        answer = await refusal(first, "out of credit")
    assert "moderators" not in answer.content
    assert "could not post in the alert channel" in caplog.text
    later = await refusal(await h.speak(h.bob, text="Were they told now?"), "out of credit")
    assert "moderators" not in later.content  # the channel is set, but nobody was told
    assert h.sandbox.messages(closed) == []


async def test_a_bot_wide_pause_alerts_every_server_with_an_alert_channel_once(make_harness) -> None:
    async with make_harness(start=False) as h:
        other = h.sandbox.add_guild("Other Server")
        other_alerts = other.add_text_channel("staff")
        quiet = h.sandbox.add_guild("Quiet Server")  # no alert channel: skipped, no message
        quiet_general = quiet.add_text_channel("general")
        await h.start_bot()
        await h.set_alert_channel(h.alerts)
        await h.bot.core.quotas.admin.set_alert_channel(other.id, other_alerts.id, actor_id=h.mo.id)
        h.emulator.set_balance(0)

        await card_with(await h.speak(text="The money is gone."), "failed")
        here = await h.sandbox.wait_for_message(h.alerts)
        there = await h.sandbox.wait_for_message(other_alerts)
        assert here.content == there.content and "every server" in here.content
        await refusal(await h.speak(h.bob, text="Again?"), "out of credit")
        assert h.sandbox.messages(h.alerts) == [here] and h.sandbox.messages(other_alerts) == [there]
        assert h.sandbox.messages(quiet_general) == []


async def test_a_used_up_server_budget_alerts_the_moderators_once(harness: Harness) -> None:
    h = harness
    await h.set_alert_channel(h.alerts)
    await h.bot.core.quotas.admin.set_daily_budget(h.guild.id, 1, actor_id=h.mo.id)
    await card_with(await h.speak(text="The server's only request today."), "done")

    first = await refusal(await h.speak(h.bob, text="One more, please."), "daily budget")
    assert "resets" in first.content
    alert = await h.sandbox.wait_for_message(h.alerts)
    assert "budget is used up" in alert.content and "/quota budget" in alert.content
    assert "bob" in alert.content and not any(alert.pings().values())
    await refusal(await h.speak(text="And one from me?"), "daily budget")
    assert h.sandbox.messages(h.alerts) == [alert]  # once per server and day
    assert len(await h.ledger_rows()) == 1 and emulator_submissions(h) == 1


async def test_rate_limited_jobs_show_their_place_and_complete_later(harness: Harness) -> None:
    h = harness
    h.bot.core.limiter.hold(1.0)  # the shared guard after a 429: everybody waits
    h.emulator.script_submit(Outcome("http_429", retry_after=0.3))  # and the gateway says 429 once more

    first = await h.speak(text="Waiting in line, first.")
    await card_with(first, "queued, position 1")  # in line before the second one is asked for
    second = await h.speak(h.bob, text="Waiting in line, second.")
    await card_with(second, "queued, position 2")

    for handle in (first, second):
        seen = statuses(await card_with(handle, "done"))
        assert any(s.startswith("queued, position") for s in seen), seen
    assert "queued, position 1" in statuses(first.original)
    assert h.emulator.counts["submit:429"] == 1 and h.emulator.counts["submit:202"] == 2
    assert len(h.audio_messages()) == 2
    assert [r["state"] for r in await h.ledger_rows()] == ["committed", "committed"]


async def test_the_voice_output_without_a_voice_cog_posts_the_file(make_harness) -> None:
    async with make_harness(cogs=("cogs.speak",)) as h:
        handle = await h.speak(text="Say it in voice chat.", output="voice")
        card = await card_with(handle, "done")
        assert "voice output is not available; posted the file instead" in card.content
        [audio] = h.audio_messages()
        assert "Voice output is not available" in audio.content


async def test_voice_output_refused_by_the_player_posts_the_file_with_the_reason(harness: Harness) -> None:
    h = harness  # alice is in no voice channel
    handle = await h.speak(text="Play this in voice chat.", output="voice")
    card = await card_with(handle, "done")
    assert "**Voice:** Posted instead because you are not in a voice channel." in card.content
    [audio] = h.audio_messages()
    assert "Posted instead because you are not in a voice channel." in audio.content
    assert audio.attachments[0].data == next(iter(h.emulator.jobs.values())).media_bytes
