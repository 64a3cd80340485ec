"""Ids we generate ourselves: 32 hex characters of a random uuid4 (no round trip, no clash
between processes)."""

from __future__ import annotations

import uuid


def new_id() -> str:
    return uuid.uuid4().hex
