"""Helpers of the command-line tests: how to start ``chatterbox-bot`` and a port nothing serves."""

from __future__ import annotations

import socket
import sys
from pathlib import Path


def cli() -> list[str]:
    """The installed ``chatterbox-bot`` script beside this interpreter, else ``python -m bot``."""
    script = Path(sys.executable).with_name("chatterbox-bot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


def closed_port() -> int:
    """A local port that was free a moment ago (nothing listens on it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
