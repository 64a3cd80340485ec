"""``chatterbox-bot speak`` as a person runs it: a real subprocess (``python -m bot speak``)
against the gateway emulator on loopback, with its own SQLite database.

The emulator here runs on the real clock (the subprocess cannot share a ScaledClock) with
jobs of a fraction of a second; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import os
import sys
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.gateway.emulator import EmulatorConfig, GatewayEmulator

SECRET_KEY = "cli-secret-key-0123456789abcdef"
TWO_CHUNKS = (
    "The first sentence is short and sweet. "
    "The second sentence takes a little longer to say."
)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stderr.splitlines()


@pytest.fixture
async def emulator() -> AsyncIterator[GatewayEmulator]:
    config = EmulatorConfig(api_keys=(SECRET_KEY,), seed=5, jitter=0.0, base_seconds=0.05,
                            per_char_seconds=0.001, webhook_duplicate_rate=0.0)
    async with GatewayEmulator(config) as emu:
        yield emu


def _environment(tmp_path: Path, emulator: GatewayEmulator, **extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CHATTERBOX_", "DISCORD_")) and k not in ("DATABASE_URL", "LOG_LEVEL")}
    env.update({
        "CHATTERBOX_GATEWAY_URL": emulator.base_url,
        "CHATTERBOX_API_KEY": SECRET_KEY,
        "CHATTERBOX_ALLOW_HTTP": "true",
        "CHATTERBOX_CHUNK_CHARS": "60",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'cli.db'}",
    })
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def speak(tmp_path: Path, emulator: GatewayEmulator, *args: str, **env: str | None) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "speak", *args,
        cwd=tmp_path,  # no .env file there
        env=_environment(tmp_path, emulator, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    run = Run(process.returncode, stdout.decode(), stderr.decode())
    assert SECRET_KEY not in run.stdout and SECRET_KEY not in run.stderr
    return run


async def test_round_trip_writes_a_24khz_mono_wav_and_shows_progress(
    tmp_path: Path, emulator: GatewayEmulator
) -> None:
    run = await speak(tmp_path, emulator, TWO_CHUNKS, "-o", "hello.wav", "--exaggeration", "0.7")

    assert run.code == 0, run.stderr
    with wave.open(str(tmp_path / "hello.wav")) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (24000, 1, 2)
        assert wav.getnframes() > 0
    assert (tmp_path / "hello.wav").stat().st_mode & 0o777 == 0o644  # readable, like any shell output
    assert run.lines[0] == "queued… 2 requests, $0.02"
    assert "chunk 1/2" in run.lines and "chunk 2/2" in run.lines
    assert run.lines.index("chunk 1/2") < run.lines.index("chunk 2/2")
    assert run.lines[-1].startswith("done: ") and run.lines[-1].endswith("2 requests, $0.02 -> hello.wav")
    assert emulator.counts["submit"] == 2
    assert {job.params["exaggeration"] for job in emulator.jobs.values()} == {0.7}
    assert _listing(tmp_path) == ["data", "hello.wav"]  # no temporary file left behind


async def test_the_key_stays_secret_even_in_debug_logs(tmp_path: Path, emulator: GatewayEmulator) -> None:
    run = await speak(tmp_path, emulator, "Hello there!", "-o", "out.wav", LOG_LEVEL="DEBUG")
    assert run.code == 0, run.stderr
    assert "DEBUG" in run.stderr  # the logs were really on (speak() checked the key is absent)


async def test_empty_balance_prints_one_line_and_fails(tmp_path: Path, emulator: GatewayEmulator) -> None:
    emulator.set_balance(0)
    run = await speak(tmp_path, emulator, "Hello there!", "-o", "out.wav", "--quiet")

    assert run.code == 1
    assert len(run.lines) == 1, run.stderr
    assert run.lines[0].startswith("chatterbox-bot: insufficient balance")
    assert not (tmp_path / "out.wav").exists()
    assert emulator.counts["submit"] == 1


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["Hello", "-o", "out.wav", "--temperature", "3"], {}, "--temperature must be from 0.1 to 1.0"),
        (["Hello", "-o", "out.wav"], {"CHATTERBOX_API_KEY": None}, "CHATTERBOX_API_KEY is not set"),
        (["   ", "-o", "out.wav"], {}, "The text is empty"),
        (["Hello", "-o", "missing/out.wav"], {}, "does not exist"),
        (["[laugh] [sigh] ~~~~", "-o", "out.wav"], {}, "nothing to speak"),
    ],
    ids=["bad-option", "missing-key", "empty-text", "bad-output", "nothing-left-after-cleanup"],
)
async def test_usage_errors_exit_2_with_one_line_and_spend_nothing(
    tmp_path: Path, emulator: GatewayEmulator, args: list[str], env: dict[str, str | None], needle: str
) -> None:
    run = await speak(tmp_path, emulator, *args, **env)

    assert run.code == 2
    assert len(run.lines) == 1, run.stderr
    assert run.lines[0].startswith("chatterbox-bot") and needle in run.lines[0]
    assert emulator.counts["submit"] == 0
    assert not (tmp_path / "out.wav").exists()


@pytest.fixture
async def clip_server() -> AsyncIterator[str]:
    """A loopback web server with clips for ``--voice-url``: one too long, one not audio."""
    import io

    from aiohttp import web

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * 8000 * 40)  # 40 s: over VOICE_REF_MAX_SECONDS (30)
    long_wav = buffer.getvalue()

    async def long_clip(_: web.Request) -> web.Response:
        return web.Response(body=long_wav, content_type="audio/wav")

    async def text_file(_: web.Request) -> web.Response:
        return web.Response(text="not a voice at all", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/long.wav", long_clip)
    app.router.add_get("/notes.wav", text_file)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("path", "needle"),
    [("/long.wav", "the limit is 30 s"), ("/notes.wav", "voice clip")],
    ids=["too-long", "not-audio"],
)
async def test_voice_url_obeys_the_same_clip_rules_as_slash_speak(
    tmp_path: Path, emulator: GatewayEmulator, clip_server: str, path: str, needle: str
) -> None:
    run = await speak(tmp_path, emulator, "Hello there!", "-o", "out.wav", "--voice-url", clip_server + path)

    assert run.code == 2
    assert len(run.lines) == 1, run.stderr
    assert needle in run.lines[0]
    assert emulator.counts["submit"] == 0  # refused before anything was reserved or sent
    assert not (tmp_path / "out.wav").exists()
