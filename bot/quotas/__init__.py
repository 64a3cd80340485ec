"""Quotas and guards: who may spend how much, and the bot-wide wallet pause.

- ``QuotaService``: reserve → commit | refund (DESIGN rule 3), usage reports;
  ``QuotaService.admin`` (``QuotaAdmin``) holds the moderator operations.
- ``WalletGuard``: the 402 pause (DESIGN rule 4).
- The shared rate guard lives in ``bot.gateway.ratelimit`` (imported from there, not here).
"""

from bot.quotas.admin import PolicyEntry, QuotaAdmin
from bot.quotas.audit import AuditEntry
from bot.quotas.errors import (
    GuildPaused,
    PolicyError,
    QuotaExceeded,
    SettlementError,
    UnknownReservation,
)
from bot.quotas.guilds import GuildSettings
from bot.quotas.ledger import Reservation, ReservationState, UserUsage
from bot.quotas.policy import FIELD_LIMITS, POLICY_FIELDS, Policy, PolicyScope, ResolvedPolicy, resolve
from bot.quotas.service import GuildUsage, QuotaService, UsageHistory, UsageSummary
from bot.quotas.wallet import SubmissionsPaused, SubmitPermit, WalletGuard, WalletState

__all__ = [
    "FIELD_LIMITS",
    "POLICY_FIELDS",
    "AuditEntry",
    "GuildPaused",
    "GuildSettings",
    "GuildUsage",
    "Policy",
    "PolicyEntry",
    "PolicyError",
    "PolicyScope",
    "QuotaAdmin",
    "QuotaExceeded",
    "QuotaService",
    "Reservation",
    "ReservationState",
    "ResolvedPolicy",
    "SettlementError",
    "SubmissionsPaused",
    "SubmitPermit",
    "UnknownReservation",
    "UsageHistory",
    "UsageSummary",
    "UserUsage",
    "WalletGuard",
    "WalletState",
    "resolve",
]
