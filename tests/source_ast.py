"""Reading the project's own source as syntax trees, for the tests that check it.

``ast.parse`` is retried on ``SystemError``: CPython 3.11 before 3.11.8 can raise a spurious
"AST constructor recursion depth mismatch" while other threads run during the parse
(python/cpython#106905; the voice tests leave discord.py's audio threads winding down). A
real syntax error is a ``SyntaxError`` and is never retried.
"""

from __future__ import annotations

import ast
from pathlib import Path

ATTEMPTS = 3


def parse_file(path: Path) -> ast.Module:
    source = path.read_text()
    for attempt in range(ATTEMPTS):
        try:
            return ast.parse(source, filename=str(path))
        except SystemError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
