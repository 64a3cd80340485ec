"""The operator's command line: --version and LOG_FORMAT=json."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from bot.cli import log_formatter
from bot.version import version

ROOT = Path(__file__).resolve().parents[2]


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"},
    )
    assert done.returncode == 0
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{version()}"' in pyproject
    assert done.stdout.startswith(f"chatterbox-bot {version()} (discord.py 2.")


def test_json_logs_are_one_object_per_line_with_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter("json"))
    logger = logging.getLogger("tests.json_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning('a "quoted" line\nwith a break', extra={"error_id": "ab12cd34"})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "WARNING" and first["logger"] == "tests.json_logs"
    assert first["message"] == 'a "quoted" line\nwith a break' and first["error_id"] == "ab12cd34"
    assert "time" in first
    assert second["message"] == "failed" and "ValueError: boom" in second["exc_info"]


def test_log_format_json_reaches_the_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "LOG_FORMAT")}
    env |= {"LOG_FORMAT": "json", "FFMPEG_PATH": str(tmp_path / "no-ffmpeg"), "LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-c",
         "from bot.cli import _configure_logging; from bot.config import load_settings; "
         "_configure_logging(load_settings()); "
         "from bot.audio import find_ffmpeg; find_ffmpeg(" + repr(str(tmp_path / "no-ffmpeg")) + ")"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stderr.splitlines()[0])
    assert record["level"] == "WARNING" and record["logger"] == "bot.audio"
    assert "FFMPEG_PATH" in record["message"]
