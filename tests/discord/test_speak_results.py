"""Results are cached, re-rollable and replayable: /speak twice, Re-roll, Play in voice.

The real bot in the Discord sandbox, the gateway emulator, SQLite and cache files on disk.
"""

from __future__ import annotations

from tests.discord.harness import Harness
from tests.discord.speak_support import card_with, emulator_submissions, refusal, statuses
from tests.discord.voice_support import voice_world
from tests.sandbox import Message


def result_buttons(message: Message) -> dict[str, str]:
    """label -> custom id of a result's buttons."""
    return {b["label"]: b["custom_id"] for b in message.buttons}


async def test_the_same_text_twice_is_one_provider_call_and_the_second_is_free(harness: Harness) -> None:
    h = harness
    await card_with(await h.speak(text="Say it once, hear it twice."), "done")
    bobs = await h.speak(h.bob, text="Say it once, hear it twice.")
    second = await card_with(bobs, "done")

    assert emulator_submissions(h) == 1
    assert statuses(second)[0] == "from cache"
    assert "(from cache)" in statuses(second)[-1] and "$" not in second.content  # no price in public
    [note] = [m for m in bobs.messages if m.ephemeral and "audio cache" in m.content]
    assert note.content == "This /speak came from the audio cache: it is free and uses none of your quota."
    [ledger] = await h.ledger_rows()  # bob's replay left no reservation: nothing was spent
    assert ledger["user_id"] == h.alice.id and ledger["committed_requests"] == 1
    first_audio, second_audio = h.audio_messages()
    assert first_audio.attachments[0].data == second_audio.attachments[0].data
    for audio in (first_audio, second_audio):
        assert set(result_buttons(audio)) == {"Re-roll", "Play in voice", "Report"}


async def test_reroll_is_for_the_requester_and_makes_a_new_paid_take(harness: Harness) -> None:
    h = harness
    await card_with(await h.speak(text="Roll the dice on this one."), "done")
    [audio] = h.audio_messages()
    reroll = result_buttons(audio)["Re-roll"]

    refused = await h.sandbox.click(audio, reroll, user=h.bob)
    await refusal(refused, "can re-roll this")
    assert emulator_submissions(h) == 1

    clicked = await h.sandbox.click(audio, reroll, user=h.alice)
    card = await card_with(clicked, "done")
    assert "Re-roll: a new take" in card.content
    assert statuses(card)[0] == "quota ok"  # paid, not from the cache (the cost is private)
    assert emulator_submissions(h) == 2 and len(await h.ledger_rows()) == 2
    # The new take replaced the cached one: the next identical request replays it for free.
    replay = await card_with(await h.speak(h.bob, text="Roll the dice on this one."), "done")
    assert statuses(replay)[0] == "from cache" and emulator_submissions(h) == 2
    assert h.audio_messages()[-1].attachments[0].data == h.audio_messages()[1].attachments[0].data


async def test_result_buttons_survive_a_restart(harness: Harness) -> None:
    h = harness
    await card_with(await h.speak(text="Still clickable tomorrow."), "done")
    [audio] = h.audio_messages()
    await h.restart_bot()

    clicked = await h.sandbox.click(audio, result_buttons(audio)["Re-roll"], user=h.alice)
    card = await card_with(clicked, "done")
    assert "Re-roll" in card.content and emulator_submissions(h) == 2


async def test_play_in_voice_replays_from_the_cache_for_free(make_harness) -> None:
    async with voice_world(make_harness) as w:
        h = w.h
        await card_with(await h.speak(text="Play me again in voice."), "done")
        [audio] = h.audio_messages()
        play = result_buttons(audio)["Play in voice"]

        not_in_voice = await h.sandbox.click(audio, play, user=h.bob)
        await refusal(not_in_voice, "Join a voice channel first")

        await w.join(h.bob)
        clicked = await h.sandbox.click(audio, play, user=h.bob)
        await refusal(clicked, "from cache, free")
        [playback] = await w.lab.wait_for_playbacks(1)
        await w.lab.wait_finished(playback)
        assert playback.error is None and playback.seconds > 0.5
        assert emulator_submissions(h) == 1 and len(await h.ledger_rows()) == 1


async def test_play_in_voice_says_so_when_the_audio_left_the_cache(make_harness) -> None:
    async with voice_world(make_harness, settings={"cache_max_mb": 0}) as w:
        h = w.h
        await card_with(await h.speak(text="Not kept anywhere."), "done")
        [audio] = h.audio_messages()
        await w.join(h.alice)
        clicked = await h.sandbox.click(audio, result_buttons(audio)["Play in voice"], user=h.alice)
        await refusal(clicked, "no longer in the cache")
        assert w.lab.playbacks == []
