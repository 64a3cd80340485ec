from __future__ import annotations

import hashlib

import pytest

from bot.clock import ManualClock
from bot.store import Database
from bot.voices import NormalisedClip, VoiceLibrary
from bot.voices.clips import SAMPLE_RATE
from tests.discord.speak_support import make_wav
from tests.quotas.conftest import make_settings
from tests.store.dbkit import db, db_target, postgres_target

__all__ = ["db", "db_target", "postgres_target"]

GUILD = 1000
ALICE, BOB, MO = 11, 22, 33


def clip_of(seconds: float = 6.0, pitch: float = 220.0) -> NormalisedClip:
    """A stored-form clip without FFmpeg (library tests do not need the normaliser)."""
    wav = make_wav(seconds, rate=SAMPLE_RATE, pitch=pitch)
    return NormalisedClip(wav, hashlib.sha256(wav).hexdigest(), seconds, seconds)


@pytest.fixture
def library(db: Database, clock: ManualClock) -> VoiceLibrary:
    return VoiceLibrary(db, make_settings(voices_per_member=3, voices_per_server=6), clock)
