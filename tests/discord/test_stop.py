"""Start-up refusals and the clean stop of the bot process, against the Discord sandbox."""

from __future__ import annotations

import asyncio
import os
import signal

import discord
import pytest
from pydantic import SecretStr

from bot.app import ChatterboxBot, make_bot, run_bot
from bot.cli import startup_problem
from bot.store.instance_lock import acquire_for_url
from tests.discord.harness import Harness


async def test_a_wrong_discord_token_is_refused_with_one_clear_line(harness: Harness) -> None:
    bot = harness.new_bot()
    with harness.sandbox.configure_client(), pytest.raises(discord.LoginFailure) as refused:
        await bot.login("not-the-token")
    await bot.close()
    line = startup_problem(refused.value)
    assert line is not None and "Discord refused DISCORD_TOKEN" in line
    assert "not-the-token" not in line


async def test_a_stopping_bot_takes_no_new_job_and_says_so(harness: Harness) -> None:
    h = harness
    await h.bot.core.speech.stop(grace=0)  # what SIGTERM starts (before Discord is closed)
    handle = await h.speak(text="Too late, the bot is stopping.")
    message = await _refusal_text(handle)
    assert "restarting" in message and "nothing was charged" in message
    assert await h.ledger_rows() == [] and await h.job_rows() == []


async def _refusal_text(handle) -> str:
    from tests.discord.speak_support import refusal

    return (await refusal(handle, "restarting")).content


def test_shard_settings_make_an_auto_sharded_bot_for_those_shards(harness: Harness) -> None:
    settings = harness.settings.model_copy(update={"discord_shard_count": 4, "discord_shard_ids": "1,3"})
    bot = make_bot(settings)
    assert isinstance(bot, discord.AutoShardedClient) and isinstance(bot, ChatterboxBot)
    assert bot.shard_count == 4 and bot.shard_ids == [1, 3]
    plain = make_bot(harness.settings)
    assert not isinstance(plain, discord.AutoShardedClient)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_sigterm_stops_chatterbox_bot_run_cleanly(harness: Harness, sig: signal.Signals) -> None:
    """``run_bot`` (what ``chatterbox-bot run`` awaits) installs its own SIGTERM and SIGINT
    (Ctrl-C) handlers, so the signal works even as PID 1: the bot closes, its lock is
    released, and it returns."""
    h = harness
    await h.stop_bot()
    settings = h.settings.model_copy(update={"discord_token": SecretStr(h.sandbox.token), "http_port": 0})
    with h.sandbox.configure_client():
        running = asyncio.create_task(run_bot(settings))
        await h.sandbox.wait_ready()
        os.kill(os.getpid(), sig)  # handled by run_bot's handler, not the default
        async with asyncio.timeout(30):
            await running  # returned normally: exit 0 for the CLI
    lock = acquire_for_url(settings.database_url)  # released: a restart may take it
    if lock is not None:
        lock.release()
