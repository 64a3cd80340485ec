"""``bench/chaos.py`` (``make chaos``) when PostgreSQL does not answer: a failure with one line
under ``CI=true`` or when ``--engines`` names it, never a silent pass (no campaign runs)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("args", "ci"), [(["--engines", "postgres"], ""), ([], "true")],
                         ids=["asked-for", "ci"])
def test_an_unreachable_postgresql_fails_the_campaign_with_one_line(args: list[str], ci: str) -> None:
    env = {**os.environ, "CI": ci,
           "CHATTERBOX_TEST_POSTGRES_URL": f"postgresql+asyncpg://x@127.0.0.1:{_closed_port()}/test"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "chaos.py"), "--points", "0", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "PostgreSQL" in lines[0] and "not reachable" in lines[0], done.stderr
