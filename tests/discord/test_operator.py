"""What an operator sees: the ready line, the "not synced" warning, and `sync` with only a token.

All against the Discord sandbox, which serves the application-commands endpoints as Discord
does (the unmodified discord.py client talks to it).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.app import ChatterboxBot, sync_commands
from bot.config import Settings, load_settings
from tests.discord.conftest import HarnessFactory
from tests.discord.harness import Harness
from tests.discord.speak_support import refusal
from tests.sandbox import DiscordSandbox


async def _code_commands(settings: Settings) -> list[dict]:
    """The command payloads this version defines (the tree with its cogs, no services)."""
    bot = ChatterboxBot(settings, commands_only=True)
    async with bot:
        await bot.setup_hook()
        return [c.to_dict(bot.tree) for c in bot.tree.get_commands()]


async def _report(h: Harness, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    with caplog.at_level(logging.INFO, logger="bot.app"):
        await h.start_bot()
        assert h.bot.ready_report is not None
        await asyncio.wait_for(asyncio.shield(h.bot.ready_report), 30)
    return [r for r in caplog.records if r.name == "bot.app"]


async def test_synced_bot_says_ready_with_counts_and_no_warning(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_harness(start=False, sync_commands=False) as h:
        h.sandbox.register_commands(await _code_commands(h.settings))  # synced earlier, same version
        records = await _report(h, caplog)
        count = len(h.sandbox.commands())
        assert count >= 3
        assert f"ready: {h.sandbox.bot_user.username} in 1 server, {count} commands registered" in [
            r.getMessage() for r in records
        ]
        assert not [r for r in records if r.levelno >= logging.WARNING]


async def test_never_synced_bot_warns_naming_sync(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_harness(start=False, sync_commands=False) as h:
        records = await _report(h, caplog)
        messages = [r.getMessage() for r in records]
        assert any(m.endswith("in 1 server, 0 commands registered") for m in messages), messages
        warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "chatterbox-bot sync" in warnings[0] and "missing: " in warnings[0] and "/speak" in warnings[0]


async def test_commands_synced_to_the_server_count_and_give_no_warning(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # The README's set-up syncs with --guild: nothing global, the server has them all.
    async with make_harness(start=False, sync_commands=False) as h:
        h.sandbox.register_commands(await _code_commands(h.settings), guild=h.guild)
        records = await _report(h, caplog)
        count = len(h.sandbox.commands(h.guild))
        assert h.sandbox.commands() == [] and count >= 3
        assert f"ready: {h.sandbox.bot_user.username} in 1 server, {count} commands registered" in [
            r.getMessage() for r in records
        ]
        assert not [r for r in records if r.levelno >= logging.WARNING]


async def test_outdated_commands_in_a_server_name_sync_with_that_guild(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_harness(start=False, sync_commands=False) as h:
        old = await _code_commands(h.settings)
        speak = next(c for c in old if c["name"] == "speak")
        speak["options"] = speak["options"][:1]
        h.sandbox.register_commands(old, guild=h.guild)
        records = await _report(h, caplog)
        [warning] = [r.getMessage() for r in records if r.levelno == logging.WARNING]
        assert f"registered in server {h.guild.id}" in warning and "outdated: /speak" in warning
        assert f"chatterbox-bot sync --guild {h.guild.id}" in warning


async def test_outdated_and_leftover_commands_are_named(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_harness(start=False, sync_commands=False) as h:
        old = await _code_commands(h.settings)
        speak = next(c for c in old if c["name"] == "speak")
        speak["options"] = speak["options"][:1]  # an older /speak with fewer options
        old.append({"type": 1, "name": "tts-old", "description": "an old command", "options": []})
        h.sandbox.register_commands(old)
        records = await _report(h, caplog)
        warning = next(r.getMessage() for r in records if r.levelno == logging.WARNING)
        assert "outdated: /speak" in warning and "no longer used: /tts-old" in warning
        assert "missing" not in warning


async def test_sync_needs_only_the_discord_token(tmp_path: Path) -> None:
    # No API key, and a database that cannot be opened: sync must touch neither.
    unreachable = tmp_path / "no" / "such" / "dir.db"
    (tmp_path / "no").write_text("a file where the database's directory would be")
    async with DiscordSandbox() as sandbox:
        settings = load_settings(
            discord_token=sandbox.token, chatterbox_api_key="", database_url=f"sqlite+aiosqlite:///{unreachable}"
        )
        with sandbox.configure_client():
            names = await sync_commands(settings)
        assert {"speak", "quota", "voice"} <= set(names)
        assert sorted(c["name"] for c in sandbox.commands()) == names
        guild = sandbox.add_guild("One Server")
        with sandbox.configure_client():
            await sync_commands(settings, guild_id=guild.id)
        assert sorted(c["name"] for c in sandbox.commands(guild)) == names


async def test_an_unconvertible_option_names_the_option_and_what_it_takes(harness: Harness) -> None:
    h = harness  # /quota alerts wants a text channel; a stale client sends the voice channel
    handle = await h.sandbox.slash("quota alerts", user=h.mo, channel=h.general, validate=False,
                                   options={"channel": h.voice_channel})
    answer = await refusal(handle, "is not a valid value")
    assert answer.content == (
        "`Lounge` is not a valid value for `channel`: "
        "pick a text channel or announcement channel of this server."
    )
