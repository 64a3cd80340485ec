"""The installed version of this package, for ``--version``, ``/about`` and the start-up line.

Read from the installed distribution's metadata (``pyproject.toml``'s ``version``), so there is
one place to change it; a source tree that was never installed says ``unknown``.
"""

from __future__ import annotations

import platform
from importlib import metadata

DISTRIBUTION = "chatterbox-discord"


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def version_line() -> str:
    """``chatterbox-bot 0.1.0 (discord.py 2.7.1, Python 3.11.7)``."""
    try:
        discord_py = metadata.version("discord.py")
    except metadata.PackageNotFoundError:
        discord_py = "not installed"
    return f"chatterbox-bot {version()} (discord.py {discord_py}, Python {platform.python_version()})"
