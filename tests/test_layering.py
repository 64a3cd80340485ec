"""DESIGN's import rules, checked on the source: data flows one way, cogs → core.

- Nothing in ``bot/`` but ``bot/app.py`` and ``bot/cli.py`` imports ``discord`` (the core is
  testable and reusable without a Discord connection).
- Nothing in ``bot/`` imports ``cogs`` (no import runs back up).
- Nothing in ``cogs/`` imports ``bot.store`` (cogs get typed objects from the services).

Every import counts, also one inside a function or under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DISCORD_ALLOWED = frozenset({"bot/app.py", "bot/cli.py"})


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _is(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(folder: str, forbidden: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    found = []
    for path in sources(folder):
        relative = path.relative_to(ROOT).as_posix()
        if relative in allowed:
            continue
        found += [f"{relative}:{line} imports {module}"
                  for line, module in imported_modules(path) if _is(module, forbidden)]
    return found


def test_only_app_and_cli_import_discord() -> None:
    assert violations("bot", "discord", DISCORD_ALLOWED) == []


def test_the_core_never_imports_cogs() -> None:
    assert violations("bot", "cogs") == []


def test_cogs_never_import_the_store() -> None:
    assert violations("cogs", "bot.store") == []


@pytest.mark.parametrize(("source", "expected"), [
    ("import discord\n", ["discord"]),
    ("def f():\n    from discord.ext import commands\n", ["discord.ext"]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import bot.store.jobs\n",
     ["typing", "bot.store.jobs"]),
    ("from . import sibling\n", []),
])
def test_the_checker_sees_every_kind_of_import(tmp_path: Path, source: str, expected: list[str]) -> None:
    module = tmp_path / "m.py"
    module.write_text(source)
    assert [name for _, name in imported_modules(module)] == expected
