"""What a member sees of a partial cache hit: the card, and the private cost message.

The real bot in the Discord sandbox, the gateway emulator, SQLite and cache files on disk;
plus the wording itself (``cogs.speak.card``, pure functions).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from cogs.speak import card as _card
from tests.discord.harness import Harness, open_harness
from tests.discord.speak_support import card_with, emulator_submissions, statuses

FIRST = "The first sentence is new and has to be made."
MIDDLE = "The middle sentence was said before, by someone."
LAST = "The last sentence is new as well, and paid for."


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with open_harness(tmp_path, settings={"chatterbox_chunk_chars": 60}) as h:
        yield h


async def test_the_card_says_how_much_came_from_the_cache_and_the_cost_is_the_real_one(
    harness: Harness,
) -> None:
    h = harness
    await card_with(await h.speak(h.bob, text=MIDDLE), "done")  # someone said it before
    handle = await h.speak(text=f"{FIRST} {MIDDLE} {LAST}")
    card = await card_with(handle, "done")

    seen = statuses(card)
    assert seen[0] == "quota ok: 2 parts to make, 1 from cache"
    assert seen[-1].startswith("done: ") and "(1 of 3 parts from cache), posted below" in seen[-1]
    assert "$" not in card.content  # the price is private
    [cost] = [m for m in handle.messages if m.ephemeral and "$" in m.content]
    assert cost.content == (
        "This /speak uses 2 requests of your quota ($0.02); 1 part of this text was already in the "
        "audio cache, free; it is given back if the TTS service does not charge for it."
    )
    assert emulator_submissions(h) == 3
    _, mine = await h.ledger_rows()
    assert (mine["user_id"], mine["requests"], mine["committed_requests"]) == (h.alice.id, 2, 2)
    assert mine["cost"] == Decimal("0.02")
    assert len(h.audio_messages()) == 2


def test_partial_hit_wording() -> None:
    assert _card.status_quota_ok(2, 1) == "quota ok: 2 parts to make, 1 from cache"
    assert _card.status_quota_ok(1, 2) == "quota ok: 1 part to make, 2 from cache"
    assert _card.status_quota_ok(3) == "quota ok: 3 parts"  # no cache: as before
    assert _card.status_done(4, where="posted below", from_cache=2, chunks=3) == (
        "done: 4 s of audio (2 of 3 parts from cache), posted below"
    )
    assert _card.status_done(4, where="posted below", cached=True, from_cache=3, chunks=3) == (
        "done: 4 s of audio (from cache), posted below"
    )
    assert _card.status_done(4) == "done: 4 s of audio"
    assert _card.cost_note(1, Decimal("0.01"), 2) == (
        "This /speak uses 1 request of your quota ($0.01); 2 parts of this text were already in the "
        "audio cache, free; it is given back if the TTS service does not charge for it."
    )
    assert _card.cost_note(0, Decimal("0"), 3) == (  # all from the cache
        "This /speak came from the audio cache: it is free and uses none of your quota."
    )
    assert _card.cost_note(2, Decimal("0.02")) == (  # no cache: as before
        "This /speak uses 2 requests of your quota ($0.02); it is given back if the TTS service "
        "does not charge for it."
    )
