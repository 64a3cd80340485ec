"""``chatterbox-bot`` as a real process against the Discord sandbox: the setup problems that
show only after the login (the database) and a token Discord refuses are one line on stderr
and exit 2, never a traceback.

The sandbox runs in this test's event loop; the process reaches it through
``tests/cli/sandbox_site/sitecustomize.py`` on its PYTHONPATH. Before the problem, the only
other lines allowed are INFO records of the log (discord.py says "logging in" at INFO).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cli.support import cli, closed_port
from tests.sandbox import DiscordSandbox

SITE = Path(__file__).with_name("sandbox_site")
_INFO_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO) ")



@pytest.fixture
async def sandbox() -> AsyncIterator[DiscordSandbox]:
    async with DiscordSandbox() as server:
        server.add_guild("Test Server")
        yield server


async def _run(sandbox: DiscordSandbox, args: list[str], cwd: Path, **env: str) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.upper().startswith(("DISCORD_", "CHATTERBOX_", "DATABASE_", "SANDBOX_"))}
    process = await asyncio.create_subprocess_exec(  # async: the sandbox answers from this loop
        *cli(), *args, cwd=cwd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**base, **env, "PYTHONPATH": str(SITE), "SANDBOX_DISCORD_API": sandbox.api_url,
             "SANDBOX_DISCORD_GATEWAY": sandbox.gateway_url},
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.communicate()
        raise
    assert process.returncode is not None
    return process.returncode, stderr.decode(errors="replace")


def _one_line(status: int, stderr: str) -> str:
    assert status == 2 and "Traceback" not in stderr, stderr
    problems = [line for line in stderr.strip().splitlines() if not _INFO_RECORD.match(line)]
    assert len(problems) == 1 and problems[0].startswith("chatterbox-bot: "), stderr
    assert stderr.strip().splitlines()[-1] == problems[0]
    return problems[0]


async def test_run_with_an_unreachable_database_is_one_line(sandbox: DiscordSandbox, tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://bot:s3cretpw@127.0.0.1:{closed_port()}/chatterbox"
    line = _one_line(*await _run(sandbox, ["run"], tmp_path, DISCORD_TOKEN=sandbox.token,
                                 CHATTERBOX_API_KEY="k", DATABASE_URL=url))
    assert "DATABASE_URL" in line and "cannot be reached" in line and "s3cretpw" not in line
    assert sandbox.state.hub.sessions == []  # stopped before its gateway session


async def test_run_with_a_read_only_sqlite_file_is_one_line(sandbox: DiscordSandbox, tmp_path: Path) -> None:
    db_file = tmp_path / "ro.db"
    db_file.write_bytes(b"")
    url = f"sqlite+aiosqlite:///file:{db_file}?mode=ro&uri=true"
    line = _one_line(*await _run(sandbox, ["run"], tmp_path, DISCORD_TOKEN=sandbox.token,
                                 CHATTERBOX_API_KEY="k", DATABASE_URL=url))
    assert "DATABASE_URL" in line and "read-only" in line
    assert db_file.read_bytes() == b""


async def test_sync_with_a_refused_token_is_one_line(sandbox: DiscordSandbox, tmp_path: Path) -> None:
    line = _one_line(*await _run(sandbox, ["sync"], tmp_path, DISCORD_TOKEN="not-the-token"))
    assert "Discord refused DISCORD_TOKEN" in line and "not-the-token" not in line
    assert sandbox.commands() == []  # nothing was synced


async def test_sync_to_a_server_the_bot_is_not_in_is_one_line(
    sandbox: DiscordSandbox, tmp_path: Path
) -> None:
    line = _one_line(*await _run(sandbox, ["sync", "--guild", "999999999999"], tmp_path,
                                 DISCORD_TOKEN=sandbox.token))
    assert "403 Forbidden" in line and "--guild" in line


async def test_sync_with_the_right_token_registers_the_commands(
    sandbox: DiscordSandbox, tmp_path: Path
) -> None:
    """The control: the same process setup reaches the sandbox and works with its token."""
    status, stderr = await _run(sandbox, ["sync"], tmp_path, DISCORD_TOKEN=sandbox.token)
    assert status == 0, stderr
    assert "speak" in {command["name"] for command in sandbox.commands()}
