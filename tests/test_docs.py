"""The documentation lists every setting: .env.example and the README's configuration table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = sorted(name.upper() for name in Settings.model_fields)


def _env_example() -> dict[str, str]:
    entries = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z0-9_]+)=(.*)$", line)
        if match:
            entries[match.group(1)] = match.group(2)
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


@pytest.mark.parametrize("name", SETTINGS)
def test_readme_configuration_table_lists_setting(name: str) -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"^\| `{name}` \|", readme, re.MULTILINE), f"{name} missing from README's table"


def test_readme_shows_the_test_command() -> None:
    assert "make test" in (ROOT / "README.md").read_text()
