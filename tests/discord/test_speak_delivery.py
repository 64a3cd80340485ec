"""/speak under Discord's rules: cancel, upload limits, the 15-minute token, permissions, restarts.

Jobs that must stay running while the test acts are held by the emulator: it runs on a
``ManualClock`` here, so a job stays PROCESSING until the test advances that clock.
"""

from __future__ import annotations

import logging
import re
import sys

from bot.audio import AudioError
from bot.clock import ManualClock
from bot.gateway.emulator import Outcome
from tests.discord.speak_support import (
    card_with,
    emulator_submissions,
    processing_job,
    refusal,
    statuses,
)
from tests.sandbox import Overwrite, Permission


async def test_cancel_is_for_the_requester_or_a_moderator(make_harness) -> None:
    emulator_clock = ManualClock()
    async with make_harness(emulator_clock=emulator_clock) as h:
        # A job the gateway is processing: cancelling stops the wait; the charge stays.
        handle = await h.speak(text="Cancel me while processing.")
        await processing_job(h)
        card = await card_with(handle, "Status:** queued")
        [button] = card.buttons

        other = await h.sandbox.click(card, button["custom_id"], user=h.bob)
        answer = await other.wait_for_original()
        assert answer.ephemeral and "Only" in answer.content and h.alice.mention in answer.content
        assert "cancelled" not in card.content

        await h.sandbox.click(card, button["custom_id"], user=h.alice)
        await card_with(handle, "cancelled")
        assert "quota was used" in card.content and card.buttons == []

        # A job still waiting for a slot: nothing was sent, so everything is refunded.
        h.bot.core.limiter.hold(600)
        waiting = await h.speak(text="Cancel me before I am sent.")
        card2 = await card_with(waiting, "queued, position 1")
        await h.sandbox.click(card2, card2.buttons[0]["custom_id"], user=h.mo)  # a moderator may
        await card_with(waiting, "cancelled (your quota was refunded)")

        assert emulator_submissions(h) == 1
        rows = await h.ledger_rows()
        assert [(r["committed_requests"], r["refunded_requests"]) for r in rows] == [(1, 0), (0, 1)]
        assert [r["status"] for r in await h.job_rows()] == ["cancelled", "cancelled"]
        assert h.audio_messages() == []


async def test_oversized_audio_is_compressed_to_fit_or_refused(make_harness) -> None:
    text = "This sentence is long enough to make a WAV file bigger than the tiny upload limit."
    async with make_harness(upload_limit=60_000) as h:
        handle = await h.speak(text=text)
        await card_with(handle, "done")
        [audio] = h.audio_messages()
        [job] = h.emulator.jobs.values()
        assert job.media_bytes is not None and len(job.media_bytes) > 60_000
        stored = audio.attachments[0]
        assert stored.filename.endswith(".ogg") and stored.data.startswith(b"OggS")
        assert stored.size <= 60_000 and "Compressed to Ogg Opus" in audio.content

        # A limit even Opus cannot meet: the card says so; nothing is posted.
        tiny = await h.sandbox.slash("speak", user=h.alice, channel=h.general, text=text,
                                     attachment_size_limit=2_000)
        card = await card_with(tiny, "done")
        assert "cannot be posted" in card.content and "upload limit" in card.content
        assert len(h.audio_messages()) == 1
        assert all(r["delivered"] for r in await h.job_rows())


async def test_a_job_finishing_after_15_minutes_is_posted_as_a_channel_message(make_harness) -> None:
    emulator_clock = ManualClock()
    async with make_harness(emulator_clock=emulator_clock) as h:
        handle = await h.speak(text="A very slow job.")
        job = await processing_job(h)
        await card_with(handle, "Status:** queued")

        h.advance_discord_time(16 * 60)  # the bot's clock sees it too: it knows the token is dead
        emulator_clock.advance(job.duration)
        card = await card_with(handle, "done")

        [audio] = h.audio_messages()
        assert audio.interaction_id is None and audio.webhook_id is None  # a plain channel message
        assert audio.attachments[0].data == h.emulator.jobs[job.request_id].media_bytes
        assert handle.refusals == []  # the bot did not even try the dead token
        assert card.edited_at is not None and statuses(card)[-1].startswith("done")


async def test_a_dead_token_the_bot_did_not_expect_falls_back_to_the_channel(make_harness) -> None:
    emulator_clock = ManualClock()
    async with make_harness(emulator_clock=emulator_clock) as h:
        handle = await h.speak(text="Discord's clock runs ahead of mine.")
        job = await processing_job(h)
        await card_with(handle, "Status:** queued")

        h.advance_discord_time(16 * 60, bot_sees_it=False)
        emulator_clock.advance(job.duration)
        await card_with(handle, "done")

        assert {r.code for r in handle.refusals} == {50027}  # tried once, then the channel
        [audio] = h.audio_messages()
        assert audio.interaction_id is None
        assert audio.attachments[0].data == h.emulator.jobs[job.request_id].media_bytes


async def test_missing_attach_files_permission_is_told_and_nothing_is_charged(harness) -> None:
    h = harness
    no_files = h.guild.add_text_channel(
        "no-files", overwrites={h.guild.bot_role: Overwrite(deny=Permission.ATTACH_FILES)}
    )
    read_only = h.guild.add_text_channel(
        "read-only", overwrites={h.guild.bot_role: Overwrite(deny=Permission.SEND_MESSAGES)}
    )
    for channel, missing in ((no_files, "Attach Files"), (read_only, "Send Messages")):
        handle = await h.speak(channel=channel, text="Post it where I cannot.")
        message = await refusal(handle, missing)
        assert "Nothing was charged" in message.content
        assert h.messages(channel) == []
    assert emulator_submissions(h) == 0 and await h.ledger_rows() == []


async def test_a_restarted_bot_delivers_the_audio_once(make_harness) -> None:
    emulator_clock = ManualClock()
    async with make_harness(emulator_clock=emulator_clock) as h:
        handle = await h.speak(text="Survive a restart, please.")
        job = await processing_job(h)
        old_card = await card_with(handle, "Status:** queued")

        bot = await h.restart_bot()
        emulator_clock.advance(job.duration)
        resume = bot.get_cog("Speak").resume_task
        assert resume is not None and await resume == 1

        [audio] = h.audio_messages()
        assert audio.interaction_id is None and h.alice.mention in audio.content
        assert audio.attachments[0].data == h.emulator.jobs[job.request_id].media_bytes
        assert "after a restart" in old_card.content and old_card.buttons == []
        [row] = await h.job_rows()
        assert row["delivered"] is True
        assert emulator_submissions(h) == 1  # resumed by polling, never posted again

        # Another restart finds nothing left to deliver.
        bot = await h.restart_bot()
        assert await bot.get_cog("Speak").resume_task == 0
        assert len(h.audio_messages()) == 1

        # The resumed result has its buttons too: Re-roll makes a new (paid) take.
        assert {b["label"] for b in audio.buttons} == {"Re-roll", "Play in voice", "Report"}
        reroll = next(b["custom_id"] for b in audio.buttons if b["label"] == "Re-roll")
        await card_with(await h.sandbox.click(audio, reroll, user=h.alice), "Status:** queued")
        assert emulator_submissions(h) == 2


async def test_a_resumed_job_whose_audio_cannot_be_converted_says_so_in_plain_words(
    make_harness, caplog, monkeypatch,
) -> None:
    async def broken_converter(*args: object, **kwargs: object) -> None:
        raise AudioError("FFmpeg could not encode the audio: Invalid argument",
                         user_message="The bot could not convert this audio.")

    emulator_clock = ManualClock()
    async with make_harness(emulator_clock=emulator_clock) as h:
        handle = await h.speak(text="Survive a restart, then fail to convert.")
        job = await processing_job(h)
        await card_with(handle, "Status:** queued")

        bot = await h.restart_bot()
        cog_module = sys.modules[type(bot.get_cog("Speak")).__module__]  # as this bot loaded it
        monkeypatch.setattr(cog_module, "fit_upload", broken_converter)
        with caplog.at_level(logging.WARNING, logger="cogs.speak.cog"):
            emulator_clock.advance(job.duration)
            assert await bot.get_cog("Speak").resume_task == 1

        [row] = await h.job_rows()
        error_id = row["id"][:8]
        [said] = [m for m in h.messages() if "can't be posted" in m.content]
        assert said.content == (
            f"{h.alice.mention}: your /speak audio was made but can't be posted: "
            f"The bot could not convert this audio. (error id `{error_id}`)"
        )
        assert "FFmpeg could not encode" in caplog.text and f"error id {error_id}" in caplog.text
        assert h.audio_messages() == []


async def test_a_job_that_fails_while_the_bot_is_down_closes_its_card_after_the_restart(
    make_harness,
) -> None:
    emulator_clock = ManualClock()
    async with make_harness(emulator_clock=emulator_clock) as h:
        h.emulator.script_submit(Outcome("failed", duration=5))
        handle = await h.speak(text="This one will fail at the provider.")
        job = await processing_job(h)
        old_card = await card_with(handle, "Status:** queued")
        assert old_card.buttons

        bot = await h.restart_bot()
        emulator_clock.advance(job.duration)
        assert await bot.get_cog("Speak").resume_task == 1

        [row] = await h.job_rows()
        assert f"**Status:** failed (error id `{row['id'][:8]}`)" in old_card.content
        assert "/quota me" in old_card.content and "charged" not in old_card.content  # cost is private
        assert "after a restart" in old_card.content and old_card.buttons == []
        assert h.audio_messages() == []
        [row] = await h.job_rows()
        assert row["status"] == "delivered" and row["error"]
        assert emulator_submissions(h) == 1


async def test_an_unexpected_error_is_an_ephemeral_apology_with_a_logged_id(harness, caplog) -> None:
    h = harness

    async def break_jobs_table(conn) -> None:
        await conn.exec_driver_sql("ALTER TABLE jobs RENAME TO jobs_gone")

    await h.bot.core.db.write(break_jobs_table)
    with caplog.at_level(logging.ERROR, logger="bot.app"):
        handle = await h.speak(text="This will hit a bug.")
        apology = await refusal(handle, "error id")
    error_id = re.search(r"error id `(\w+)`", apology.content).group(1)
    assert f"error id {error_id} in /speak" in caplog.text
    assert "OperationalError" in caplog.text  # the traceback is in the log, not in Discord
    assert "OperationalError" not in apology.content
    assert h.messages() == []  # the public "thinking" message was removed
    assert emulator_submissions(h) == 0
