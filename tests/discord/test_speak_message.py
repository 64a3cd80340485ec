"""Apps → "Speak this message" / "Speak in voice chat": a message command interaction with the
resolved message, through the sandbox, with the same cleanup, quotas, card and delivery."""

from __future__ import annotations

from tests.discord.harness import Harness
from tests.discord.speak_support import card_with, emulator_submissions, refusal, statuses
from tests.discord.voice_support import voice_world


async def test_speak_this_message_speaks_its_text_as_a_person_reads_it(harness: Harness) -> None:
    h = harness
    target = h.sandbox.post_as(
        h.bob, h.general, f"Hey <@{h.alice.id}>, **look** at https://www.example.com/x?y=1 [laugh] nooooooow"
    )
    handle = await h.sandbox.message_command("Speak this message", target, user=h.alice)

    card = await card_with(handle, "done")
    [job] = h.emulator.jobs.values()
    assert job.text == "Hey alice, look at a link to example.com nooow"  # the mention resolved by Discord
    assert job.params == {"exaggeration": 0.5, "temperature": 0.8, "cfg": 0.5}  # the invoker's defaults
    assert "Speaking a message by bob" in card.content and h.alice.mention in card.content
    assert "> Hey alice, look at a link to example.com nooow" in card.content  # the card shows what is spoken
    assert statuses(card)[0] == "quota ok"  # the cost is told to the requester privately
    [audio] = h.audio_messages()
    assert {b["label"] for b in audio.buttons} == {"Re-roll", "Play in voice"}
    [ledger] = await h.ledger_rows()
    assert ledger["user_id"] == h.alice.id and ledger["characters"] == len(job.text)


async def test_speak_this_message_refuses_what_has_nothing_to_say(harness: Harness) -> None:
    h = harness
    handle = await h.sandbox.message_command(
        "Speak this message", h.sandbox.post_as(h.bob, h.general, "```py\n``` [sigh]"), user=h.alice
    )
    # A code block alone is still "a code block"; tags alone are nothing.
    await card_with(handle, "done")
    empty = await h.sandbox.message_command(
        "Speak this message", h.sandbox.post_as(h.bob, h.general, "[laugh] [sigh] ||~~~~||"), user=h.alice
    )
    await refusal(empty, "nothing to speak")
    assert emulator_submissions(h) == 1 and len(await h.ledger_rows()) == 1


async def test_speak_in_voice_chat_plays_it_in_the_invokers_channel(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await w.join(h.alice)
        target = h.sandbox.post_as(h.bob, h.general, "Read this one out loud, please.")
        handle = await h.sandbox.message_command("Speak in voice chat", target, user=h.alice)

        card = await card_with(handle, "played in #Lounge")
        [playback] = w.lab.playbacks
        assert playback.error is None and playback.seconds > 0.5
        assert "output: voice" in card.content and h.audio_messages() == []
        assert {b["label"] for b in card.buttons} == {"Re-roll", "Play in voice"}  # on the card
