"""The bot process itself: starting without a token, and keeping the token out of logs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from tests.discord.harness import Harness
from tests.discord.speak_support import card_with, refusal


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("chatterbox-bot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


def test_run_without_a_discord_token_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() not in ("DISCORD_TOKEN", "CHATTERBOX_API_KEY")}
    done = subprocess.run(  # a plain (not async) test: blocking here stalls no event loop
        [*_cli(), "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("chatterbox-bot: DISCORD_TOKEN is not set")
    assert "discord.com/developers/applications" in lines[0] and "Traceback" not in done.stderr
    assert done.stdout == ""


async def test_the_discord_token_never_reaches_the_logs(harness: Harness, caplog) -> None:
    h = harness
    token = h.sandbox.token
    api_key = h.emulator.api_key
    with caplog.at_level(logging.DEBUG):
        await h.restart_bot()  # login, IDENTIFY, command sync, all at DEBUG
        handle = await h.speak(text="Is anything secret in the log?")
        await card_with(handle, "done")
        h.emulator.set_balance(0)
        failing = await h.speak(text="And in an error?")
        await card_with(failing, "failed")
    assert len(caplog.records) > 50  # the capture did see the bot's DEBUG chatter
    assert token not in caplog.text and api_key not in caplog.text
    for secret_holder in (h.settings, h.bot.core.client):
        assert token not in repr(secret_holder) and api_key not in repr(secret_holder)
    # Interaction tokens (15-minute credentials) are not logged (discord.py puts them in its
    # DEBUG lines: REST URLs, gateway payloads) and not stored with the job either.
    assert "/webhooks/" in caplog.text and "<redacted>" in caplog.text  # the redaction ran
    for interaction_token in (handle.token, failing.token):
        assert interaction_token not in caplog.text
        for row in await h.job_rows():
            assert interaction_token not in repr(row)


async def test_an_option_value_that_does_not_convert_is_refused_not_apologised_for(harness: Harness) -> None:
    h = harness  # /quota alerts wants a text channel; a stale client sends the voice channel
    handle = await h.sandbox.slash("quota alerts", user=h.mo, channel=h.general, validate=False,
                                   options={"channel": h.voice_channel})
    answer = await refusal(handle, "is not a valid value")
    assert h.voice_channel.name in answer.content and "error id" not in answer.content
    assert (await h.bot.core.quotas.admin.guild_settings(h.guild.id)).alert_channel_id is None


async def test_a_role_deleted_while_typing_is_refused_with_a_clear_message(harness: Harness) -> None:
    h = harness
    ghost_role = "123456789012345678"  # no such role in the server, and none resolved
    handle = await h.sandbox.slash(
        "quota set-role", user=h.mo, channel=h.general, validate=False,
        raw_options=[{"name": "role", "type": 8, "value": ghost_role},
                     {"name": "requests_per_day", "type": 4, "value": 3}],
    )
    answer = await refusal(handle, "can't find what you picked for `role`")
    assert "error id" not in answer.content
    assert await h.bot.core.quotas.admin.policies(h.guild.id) == []
