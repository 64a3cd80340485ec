"""/voices through the Discord sandbox: add with consent, list, share, rename, delete, limits."""

from __future__ import annotations

from bot.audio import wav_info
from tests.discord.harness import Harness
from tests.discord.voices_support import add_voice, answer, voices


async def test_add_plays_back_the_stored_clip_and_list_shows_it(harness: Harness) -> None:
    h = harness
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
