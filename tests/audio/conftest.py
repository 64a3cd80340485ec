from __future__ import annotations

import pytest

from bot.audio import find_ffmpeg


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    """The real FFmpeg (here: imageio-ffmpeg's bundled binary); these tests need one."""
    found = find_ffmpeg()
    assert found is not None, "no FFmpeg found: install ffmpeg or the imageio-ffmpeg package"
    return found
