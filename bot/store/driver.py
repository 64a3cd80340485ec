"""A short SQLite write transaction as one call of the driver's thread.

aiosqlite runs each call of a connection on that connection's own thread, and every call is a
hand-over from the event loop to that thread and back: on these machines it costs more than the
statement it carries. Through SQLAlchemy a statement takes four such calls (cursor, execute,
fetch, close) and a transaction two more (BEGIN, COMMIT). For the hottest write of the bot, a
quota reservation with its job, ``run_steps`` sends the whole transaction — ``BEGIN
IMMEDIATE``, each statement, ``COMMIT`` — as one call, and decides on the driver's thread,
between statements, whether to go on: a step whose rows its ``accept`` rejects rolls the
transaction back there and then, so nothing is written and the caller decides again on the
ordinary path (``Database.write``).

The statements are SQLAlchemy's, compiled once (``Prepared``): the SQL text and each
parameter's column type bind processor, so what is stored is byte for byte what SQLAlchemy would
store. Driver errors come out as SQLAlchemy's (``DBAPIError.instance``, parameters hidden like
the engine's), so ``Database`` tells transient ones (a busy file) from the rest as it does for
every other write.

Handing a function to the connection's thread uses aiosqlite's ``Connection._execute``, the
method behind all of its public calls; it is the one private name used here (SQLAlchemy's own
aiosqlite dialect reaches into aiosqlite's ``_tx`` and ``_conn`` likewise). The supported
aiosqlite versions are pinned in ``pyproject.toml``, and the quota and store tests run this
path on every reservation.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError


class Prepared:
    """A statement compiled once for SQLite: its SQL, each distinct parameter once (its name,
    its column type's bind processor and the value a literal of the statement carries) and,
    per position, which of them goes there (a parameter used N times is processed once)."""

    __slots__ = ("order", "slots", "sql")

    def __init__(self, stmt: Any, dialect: Any, column_keys: list[str] | None = None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
        self.sql: str = compiled.string
        names = list(dict.fromkeys(compiled.positiontup or ()))
        self.slots: list[tuple[str, Any, Any]] = []
        for name in names:
            bind = compiled.binds[name]
            self.slots.append((name, bind.type.dialect_impl(dialect).bind_processor(dialect), bind.value))
        self.order = [names.index(name) for name in compiled.positiontup or ()]

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = []
        for name, process, default in self.slots:
            value = params.get(name, default)
            values.append(value if process is None or value is None else process(value))
        return tuple([values[i] for i in self.order])


_PREPARED: dict[Any, Prepared] = {}


def prepared(key: Any, build: Callable[[], Prepared]) -> Prepared:
    """The ``Prepared`` cached under ``key``, built on first use."""
    found = _PREPARED.get(key)
    if found is None:
        found = _PREPARED[key] = build()
    return found


@dataclass(frozen=True)
class Step:
    """One statement of a ``run_steps`` transaction. With ``accept``, the transaction goes on
    only if ``accept(rows)`` is true for the statement's rows; otherwise it is rolled back.
    ``accept`` runs on the driver's thread, inside the transaction: a quick, pure check."""

    prepared: Prepared
    params: Mapping[str, Any]
    accept: Callable[[list[Any]], bool] | None = None


@dataclass(frozen=True)
class StepsResult:
    """``rows``: each step's rows, for the steps that ran. ``refused_at``: the index of the step
    whose ``accept`` said no (the transaction was rolled back: nothing was written), else None
    (committed)."""

    rows: list[list[Any]]
    refused_at: int | None


class _StepFailed(Exception):
    def __init__(self, sql: str, args: tuple[Any, ...], error: sqlite3.Error) -> None:
        self.sql, self.args_, self.error = sql, args, error


def _transaction(
    conn: sqlite3.Connection, plan: list[tuple[str, tuple[Any, ...], Callable[[list[Any]], bool] | None]]
) -> StepsResult:
    """On the driver's thread: the whole transaction (the connection is in autocommit mode,
    ``bot.store.engine``, so BEGIN and COMMIT are the transaction's own)."""
    sql, args = "BEGIN IMMEDIATE", ()
    try:
        conn.execute(sql)
        results: list[list[Any]] = []
        for sql, args, accept in plan:
            rows = conn.execute(sql, args).fetchall()
            results.append(rows)
            if accept is not None and not accept(rows):
                conn.execute("ROLLBACK")
                return StepsResult(results, len(results) - 1)
        sql, args = "COMMIT", ()
        conn.execute(sql)
        return StepsResult(results, None)
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise _StepFailed(sql, args, exc) from exc
        raise


async def run_steps(driver: Any, steps: Sequence[Step]) -> StepsResult:
    """``steps`` as one write transaction on ``driver`` (a pooled aiosqlite connection not in a
    transaction; ``Database.write_steps`` checks it out), in one call of its thread."""
    plan = [(step.prepared.sql, step.prepared.args(step.params), step.accept) for step in steps]
    try:
        return await driver._execute(_transaction, driver._conn, plan)  # the module docstring says why
    except _StepFailed as failed:
        raise DBAPIError.instance(failed.sql, failed.args_, failed.error, sqlite3.Error,
                                  hide_parameters=True) from failed.error
