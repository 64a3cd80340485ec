"""Setup problems are one line on stderr and exit 2, never a traceback (run, sync, speak, db)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import discord
import pytest

from bot.cli import startup_problem
from bot.store.instance_lock import InstanceLock, InstanceLocked
from tests.cli.support import cli, closed_port


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.upper().startswith(("DISCORD_", "CHATTERBOX_", "DATABASE_"))}
    return subprocess.run(  # plain tests: blocking here stalls no event loop
        [*cli(), *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("chatterbox-bot: ")
    return lines[0]


@pytest.mark.parametrize("command", [["db", "current"], ["db", "upgrade"]])
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    url = f"postgresql+asyncpg://bot:s3cretpw@127.0.0.1:{closed_port()}/chatterbox"
    line = _one_line(_run(command, tmp_path, DATABASE_URL=url))
    assert "DATABASE_URL" in line and "cannot be reached" in line
    assert "s3cretpw" not in line


@pytest.mark.parametrize("command", [["db", "upgrade"], ["run"]])
def test_a_bad_database_url_is_one_line(tmp_path: Path, command: list[str]) -> None:
    line = _one_line(_run(command, tmp_path, DATABASE_URL="mysql://x@y/z", DISCORD_TOKEN="x",
                          CHATTERBOX_API_KEY="k"))
    assert "unsupported database" in line


def test_a_read_only_database_is_one_line(tmp_path: Path) -> None:
    db_file = tmp_path / "ro.db"
    db_file.write_bytes(b"")
    url = f"sqlite+aiosqlite:///file:{db_file}?mode=ro&uri=true"
    line = _one_line(_run(["db", "upgrade"], tmp_path, DATABASE_URL=url))
    assert "read-only" in line


def test_speak_with_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://bot@127.0.0.1:{closed_port()}/chatterbox"
    line = _one_line(_run(["speak", "Hello there.", "-o", str(tmp_path / "out.wav")], tmp_path,
                          DATABASE_URL=url, CHATTERBOX_API_KEY="k"))
    assert "DATABASE_URL" in line


def test_a_second_bot_on_one_sqlite_file_exits_with_one_line(tmp_path: Path) -> None:
    db_file = tmp_path / "data" / "bot.db"
    first = InstanceLock.for_database(db_file.resolve())
    first.acquire()  # the first bot
    try:
        line = _one_line(_run(["run"], tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{db_file}",
                              DISCORD_TOKEN="x", CHATTERBOX_API_KEY="k"))
        assert "already running" in line and "PostgreSQL" in line
        second = InstanceLock.for_database(db_file.resolve())
        with pytest.raises(InstanceLocked):  # in one process too: the lock is per open file
            second.acquire()
    finally:
        first.release()
    again = InstanceLock.for_database(db_file.resolve())
    again.acquire()  # released: the next start takes it
    again.release()


def test_a_refused_discord_token_and_an_unreachable_discord_are_one_line() -> None:
    refused = startup_problem(discord.LoginFailure("Improper token has been passed."))
    assert refused is not None and "DISCORD_TOKEN" in refused and "Reset Token" in refused
    import aiohttp

    unreachable = startup_problem(aiohttp.ClientConnectionError("no route"))
    assert unreachable is not None and "Discord" in unreachable
    assert startup_problem(ZeroDivisionError()) is None  # a bug keeps its traceback
