"""Discord's rules surface as the discord.py exceptions Discord's error codes produce."""

from __future__ import annotations

import discord
import pytest

from bot.clock import ManualClock
from tests.sandbox import DiscordSandbox
from tests.sandbox_selftest.conftest import World
from tests.sandbox_selftest.tiny_bot import TinyBot


@pytest.mark.parametrize(("waited", "refused"), [(2.9, False), (3.5, True)])
async def test_first_response_must_come_within_3_seconds(
    sandbox: DiscordSandbox, world: World, bot: TinyBot, clock: ManualClock, waited: float, refused: bool
) -> None:
    handle = await sandbox.slash("act", user=world.member, action="respond")
    clock.advance(waited)
    bot.go_ahead.set()
    outcome = await bot.outcomes.get()
    if refused:
        assert isinstance(outcome, discord.NotFound) and outcome.code == 10062
        assert [r.code for r in handle.refusals] == [10062] and handle.callback is None
    else:
        assert outcome == "ok" and handle.callback is not None


async def test_interaction_token_dies_after_15_minutes(
    sandbox: DiscordSandbox, world: World, bot: TinyBot, clock: ManualClock
) -> None:
    handle = await sandbox.slash("act", user=world.member, action="defer-then-followup")
    await handle.response()
    clock.advance(15 * 60 + 1)
    bot.go_ahead.set()
    outcome = await bot.outcomes.get()
    assert isinstance(outcome, discord.HTTPException)
    assert (outcome.status, outcome.code) == (401, 50027)
    assert handle.followups == []


@pytest.mark.parametrize(("size", "refused"), [(1024, False), (1025, True)])
async def test_upload_over_the_interactions_attachment_size_limit(
    sandbox: DiscordSandbox, world: World, bot: TinyBot, size: int, refused: bool
) -> None:
    bot.go_ahead.set()
    handle = await sandbox.slash(
        "act", user=world.member, action="upload", size=size, attachment_size_limit=1024
    )
    outcome = await bot.outcomes.get()
    if refused:
        assert isinstance(outcome, discord.HTTPException)
        assert (outcome.status, outcome.code) == (413, 40005)
        assert handle.original is None
    else:
        assert outcome == "ok"
        assert handle.original is not None and handle.original.file("big.wav").size == 1024


async def test_second_acknowledgement_is_refused(sandbox: DiscordSandbox, world: World, bot: TinyBot) -> None:
    bot.go_ahead.set()
    handle = await sandbox.slash("act", user=world.member, action="double")
    outcome = await bot.outcomes.get()
    assert isinstance(outcome, discord.HTTPException)
    assert (outcome.status, outcome.code) == (400, 40060)
    assert handle.original is not None and handle.original.content == "first"


@pytest.mark.parametrize(
    ("channel", "size", "refused"),
    [("read_only", 0, True), ("no_files", 5, True), ("no_files", 0, False), ("general", 5, False)],
)
async def test_channel_permissions_decide_send_and_attach(
    sandbox: DiscordSandbox, world: World, bot: TinyBot, channel: str, size: int, refused: bool
) -> None:
    target = getattr(world, channel)
    bot.go_ahead.set()
    await sandbox.slash("act", user=world.member, action="post", target=target, size=size)
    outcome = await bot.outcomes.get()
    if refused:
        assert isinstance(outcome, discord.Forbidden) and outcome.code == 50013
        assert sandbox.messages(target) == []
    else:
        assert outcome == "ok"
        assert [m.content for m in sandbox.messages(target)] == ["hello"]
