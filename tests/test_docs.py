"""The documentation lists every setting: .env.example and the README's configuration table.

.env.example sets only the secrets (empty); every other setting is there commented out at its
default (``# NAME=default``), so a copy of it changes nothing but what its owner uncomments,
also when Docker reads it with ``--env-file`` (see tests/ops/test_docker_files.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = sorted(name.upper() for name in Settings.model_fields)
SECRETS = {"DISCORD_TOKEN", "CHATTERBOX_API_KEY"}


def _env_example(commented: bool | None = None) -> dict[str, str]:
    """NAME → value as written; ``commented`` picks only set (False) or only commented (True) lines."""
    entries = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^(# )?([A-Z0-9_]+)=(.*)$", line)
        if match and (commented is None or bool(match.group(1)) == commented):
            entries[match.group(2)] = match.group(3)
    return entries


@pytest.mark.parametrize("name", SETTINGS)
def test_env_example_lists_setting_with_its_default(name: str) -> None:
    entries = _env_example()
    assert name in entries, f"{name} missing from .env.example"
    default = Settings.model_fields[name.lower()].default
    if default is None:
        assert entries[name] == "", f"{name} has no default, so .env.example leaves it empty"
    else:
        written = entries[name]
        if isinstance(default, bool):
            assert written == str(default).lower()
        elif isinstance(default, float | int) and not isinstance(default, bool):
            assert float(written) == float(default), f"{name}: .env.example says {written}, code {default}"
        else:
            assert written == str(default), f"{name}: .env.example says {written}, code {default}"


def test_env_example_has_no_unknown_settings() -> None:
    assert sorted(_env_example()) == SETTINGS


def test_env_example_sets_only_the_secrets() -> None:
    assert set(_env_example(commented=False)) == SECRETS, (
        "optional settings are commented out in .env.example ('# NAME=default'), so that a copy "
        "used as .env (or as Docker's --env-file) overrides nothing by accident"
    )
    assert all(value == "" for value in _env_example(commented=False).values())


def test_env_example_gives_each_setting_a_one_line_comment() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^(# )?[A-Z0-9_]+=", line):
            above = lines[index - 1]
            assert above.startswith("# ") and not re.match(r"^# [A-Z0-9_]+=", above), (
                f"{line!r} needs a one-line comment right above it"
            )


@pytest.mark.parametrize("name", SETTINGS)
def test_readme_configuration_table_lists_setting(name: str) -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"^\| `{name}` \|", readme, re.MULTILINE), f"{name} missing from README's table"


def test_readme_shows_the_test_command() -> None:
    assert "make test" in (ROOT / "README.md").read_text()
