"""Column types that behave the same on SQLite and PostgreSQL.

- ``UTCDateTime``: timezone-aware datetimes in, timezone-aware UTC datetimes out. PostgreSQL
  stores ``timestamptz``; SQLite has no time zones, so values are stored as naive UTC text in
  SQLAlchemy's fixed-width format (which keeps ``<``/``>=`` comparisons correct as text).
  A naive datetime is refused on the way in: it is a bug to guess its zone.
- ``Money``: ``Decimal`` dollars with 4 decimal places. PostgreSQL stores ``NUMERIC(12, 4)``;
  SQLite would store a float (and SQLAlchemy warns about it), so there the value is kept as an
  integer count of 1/10,000 dollars, which makes ``SUM`` exact on both.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

MONEY_SCALE = 4
_MONEY_UNIT = Decimal(10) ** MONEY_SCALE
_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


def to_money(value: Decimal | int | str) -> Decimal:
    """A dollar amount rounded to the stored precision (4 decimal places)."""
    return Decimal(value).quantize(_MONEY_QUANTUM)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored: give it a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite returns text for computed expressions
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    impl = Numeric(12, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(12, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = to_money(value)
        if dialect.name == "sqlite":
            return int(amount * _MONEY_UNIT)
        return amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return to_money(Decimal(int(value)) / _MONEY_UNIT)
        return to_money(Decimal(value))
