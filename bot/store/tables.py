"""The schema at the newest migration, as SQLAlchemy Core tables.

Alembic migrations (``bot/store/migrations/versions``) create exactly this; a test compares
the two. Conventions:

- Discord snowflakes are ``BigInteger``; ``guild_id`` is NULL for the CLI requester.
- Every timestamp is a ``UTCDateTime`` written by the caller from its injected clock (no
  server-side ``now()``), so tests control time and all processes agree on the format.
- Money is ``Money`` (exact ``Decimal`` dollars, see ``bot.store.types``).
- Ids we generate (jobs, reservations) are 32-character hex uuid4 strings, so several
  processes can create them without a round trip.
- Quota policy fields are nullable: NULL means "inherit from the next level".
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)

from bot.store.types import Money, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID_LENGTH = 32

guild_settings = Table(
    "guild_settings",
    metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("alert_channel_id", BigInteger, nullable=True),
    Column("paused", Boolean, nullable=False, server_default=false()),
    Column("paused_by", BigInteger, nullable=True),
    Column("paused_at", UTCDateTime, nullable=True),
    Column("pause_reason", Text, nullable=True),
    Column("daily_request_budget", Integer, nullable=True),
    Column("daily_cost_cap", Money, nullable=True),
    Column("exempt_role_ids", JSON, nullable=False, server_default=text("'[]'")),
    Column("reset_hour_utc", Integer, nullable=True),
    Column("updated_at", UTCDateTime, nullable=True),
)

# scope: "guild" (target_id 0), "role" (target_id = role id) or "user" (target_id = user id).
quota_policies = Table(
    "quota_policies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("guild_id", BigInteger, nullable=False),
    Column("scope", String(8), nullable=False),
    Column("target_id", BigInteger, nullable=False),
    # One nullable column per ``bot.quotas.policy.POLICY_FIELDS`` entry (None = inherit).
    Column("requests_per_day", Integer, nullable=True),
    Column("chars_per_day", Integer, nullable=True),
    Column("cooldown_seconds", Integer, nullable=True),
    Column("max_in_flight", Integer, nullable=True),
    Column("max_chars_per_request", Integer, nullable=True),
    Column("updated_by", BigInteger, nullable=True),
    Column("updated_at", UTCDateTime, nullable=True),
    UniqueConstraint("guild_id", "scope", "target_id", name="uq_quota_policies_target"),
)

blocked_users = Table(
    "blocked_users",
    metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("blocked_by", BigInteger, nullable=True),
    Column("reason", Text, nullable=True),
    Column("blocked_at", UTCDateTime, nullable=False),
)

# One row per reservation. state: reserved (not fully settled yet; committed_requests and
# refunded_requests grow as chunks settle) | committed | refunded | partial (fully settled,
# some of each). ``cost`` is the cost of the requests not refunded. ``forgiven_at`` is set when
# a moderator resets the member's usage for the day (the row then stops counting against the
# member, but still counts against the server's budget: that money was spent).
usage_ledger = Table(
    "usage_ledger",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("guild_id", BigInteger, nullable=True),
    Column("user_id", BigInteger, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("characters", Integer, nullable=False),
    Column("price_per_request", Money, nullable=False),
    Column("cost", Money, nullable=False),
    Column("state", String(10), nullable=False),
    Column("committed_requests", Integer, nullable=False, server_default=text("0")),
    Column("refunded_requests", Integer, nullable=False, server_default=text("0")),
    Column("job_id", String(ID_LENGTH), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("settled_at", UTCDateTime, nullable=True),
    Column("forgiven_at", UTCDateTime, nullable=True),
    # The start of the quota day the reservation counts in (the counters' day key). Always
    # written; nullable only because SQLite could not add it as NOT NULL in place (0005).
    Column("quota_day", UTCDateTime, nullable=True),
    Index("ix_usage_ledger_guild_user_created", "guild_id", "user_id", "created_at"),
    Index("ix_usage_ledger_guild_created", "guild_id", "created_at"),
    Index("ix_usage_ledger_guild_day", "guild_id", "quota_day"),
)

# Counters: the ledger's sums kept as rows, so a reservation is two conditional upserts
# whatever the ledger's size (bot.quotas.counters). ``guild_key`` is the guild id, 0 for the
# CLI (a primary key cannot hold NULL; Discord ids are never 0). ``day`` is a quota day's start.
quota_guild_days = Table(
    "quota_guild_days",
    metadata,
    Column("guild_key", BigInteger, primary_key=True, autoincrement=False),
    Column("day", UTCDateTime, primary_key=True),
    Column("requests", Integer, nullable=False),
    Column("characters", Integer, nullable=False),
    Column("cost", Money, nullable=False),
)

# One row per member: the requests and characters of the member's newest quota day (``day``;
# forgiven reservations excluded), reservations not settled yet (any day), and the start of
# the newest counted reservation (for the cooldown).
quota_members = Table(
    "quota_members",
    metadata,
    Column("guild_key", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("day", UTCDateTime, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("characters", Integer, nullable=False),
    Column("in_flight", Integer, nullable=False),
    Column("last_request_at", UTCDateTime, nullable=True),
)

# Bumped by every moderator change of a guild, so each process knows when its cached copy of
# the guild's policies, blocks and settings is stale.
quota_versions = Table(
    "quota_versions",
    metadata,
    Column("guild_key", BigInteger, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)

# The state machine of DESIGN rule 1 (see bot.store.jobs):
# reserved -> submitted -> completed -> delivering -> delivered; failed -> delivered; cancelled.
# ``owner``/``lease_until``: who works on an open job and until when (bot.speech.service).
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("user_display", String(100), nullable=False),
    Column("guild_id", BigInteger, nullable=True),
    Column("channel_id", BigInteger, nullable=True),
    Column("text", Text, nullable=False),
    Column("voice_url", Text, nullable=True),
    Column("params", JSON, nullable=False),
    Column("chunk_count", Integer, nullable=False),
    Column("reservation_id", String(ID_LENGTH), ForeignKey("usage_ledger.id"), nullable=True),
    Column("status", String(10), nullable=False),
    Column("error", Text, nullable=True),
    Column("delivery", JSON, nullable=False),
    Column("delivered", Boolean, nullable=False, server_default=false()),
    Column("webhook_secret", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("owner", String(64), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("deadline", UTCDateTime, nullable=True),
    Index("ix_jobs_status", "status"),
    Index("ix_jobs_lease_until", "lease_until"),
)

job_parts = Table(
    "job_parts",
    metadata,
    Column("job_id", String(ID_LENGTH), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("text", Text, nullable=False),
    Column("request_id", Text, nullable=True),
    Column("status", String(10), nullable=False),
    Column("media_url", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Exactly one row (id = 1, inserted by the first migration): the bot-wide 402 pause.
# ``epoch`` counts pauses, so a probe permit from one pause cannot end a later one.
bot_guard = Table(
    "bot_guard",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("paused", Boolean, nullable=False, server_default=false()),
    Column("epoch", Integer, nullable=False, server_default=text("0")),
    Column("since", UTCDateTime, nullable=True),
    Column("reason", Text, nullable=True),
    Column("paused_by", String(100), nullable=True),
    Column("alert_sent", Boolean, nullable=False, server_default=false()),
    Column("last_probe_at", UTCDateTime, nullable=True),
    Column("probe_in_flight", Boolean, nullable=False, server_default=false()),
    Column("resumed_by", String(100), nullable=True),
    Column("resumed_at", UTCDateTime, nullable=True),
    # A gateway 429's Retry-After, shared so every process holds its submissions.
    Column("rate_limited_until", UTCDateTime, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("guild_id", BigInteger, nullable=True),
    Column("actor_id", BigInteger, nullable=True),
    Column("action", String(50), nullable=False),
    Column("details", JSON, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_audit_log_guild_at", "guild_id", "at"),
)

# Push delivery (migration 0006; see bot.push): one row per part submitted with a webhook.
# The provider's ids are Text (migration 0010): a request_id may be longer than 100 characters.
push_callbacks = Table(
    "push_callbacks",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("request_id", Text, nullable=True),
    Column("early_request_id", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("callback_at", UTCDateTime, nullable=True),
    Column("callback_status", String(10), nullable=True),
    Column("settled_at", UTCDateTime, nullable=True),
    Index("ix_push_callbacks_request_id", "request_id"),
    Index("ix_push_callbacks_created_at", "created_at"),
)

# The learned duration histogram of bot.gateway.polling (migration 0006): one row, id 1.
poll_durations = Table(
    "poll_durations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("weights", JSON, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The audio cache's index (``bot.cache``): one row per cached chunk. ``key`` is the SHA-256 of
# the spoken text, the reference clip's SHA-256 (``clip_sha256``, "" for the built-in voice),
# the tuning values and the model id; ``path`` is the file under CACHE_DIR (unique per row
# version, so no process ever deletes a file another row points to).
audio_cache = Table(
    "audio_cache",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("clip_sha256", String(64), nullable=False, index=True),
    Column("model_id", String(200), nullable=False),
    Column("path", String(200), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("last_used_at", UTCDateTime, nullable=False, index=True),
)

# One row per result a member got (its id is the job id, or a new id for a cache hit): what
# the result's Re-roll and Play in voice buttons need after a restart.
speech_takes = Table(
    "speech_takes",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("guild_id", BigInteger, nullable=True),
    Column("text", Text, nullable=False),
    Column("chunks", JSON, nullable=False),
    Column("voice_url", Text, nullable=True),
    Column("voice_name", String(200), nullable=True),
    Column("clip_sha256", String(64), nullable=True, index=True),
    Column("params", JSON, nullable=False),
    Column("model_id", String(200), nullable=True),
    Column("created_at", UTCDateTime, nullable=False, index=True),
)

# --- saved voices (bot.voices) ------------------------------------------------------------
# scope: "private" (only the owner), "server" (shared by its owner with the server) or
# "preset" (owned by the server, added by a moderator; owner_id is that moderator). A voice
# belongs to the server it was added in. ``owner_key`` is owner_id for member voices and 0 for
# presets, so names are unique per owner per server and among a server's presets.
# ``name_key`` is the casefolded name (uniqueness and prefix search). The clip is the
# normalised WAV itself (<= 10 s of 24 kHz mono 16-bit, ~480 KB). ``preview`` holds the sample
# sentence's audio once /voices preview made it. A revoked voice keeps its row (the owner can
# see why) but is unusable in its server.
voices = Table(
    "voices",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("guild_id", BigInteger, nullable=False),
    Column("owner_id", BigInteger, nullable=False),
    Column("owner_key", BigInteger, nullable=False),
    Column("name", String(32), nullable=False),
    Column("name_key", String(32), nullable=False),
    Column("scope", String(8), nullable=False),
    Column("clip", LargeBinary, nullable=False),
    Column("clip_sha256", String(64), nullable=False),
    Column("clip_seconds", Float, nullable=False),
    Column("exaggeration", Float, nullable=True),
    Column("temperature", Float, nullable=True),
    Column("cfg", Float, nullable=True),
    Column("consent_by", BigInteger, nullable=False),
    Column("consent_at", UTCDateTime, nullable=False),
    Column("storage_channel_id", BigInteger, nullable=True),
    Column("storage_message_id", BigInteger, nullable=True),
    Column("preview", LargeBinary, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_by", BigInteger, nullable=True),
    Column("revoke_reason", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("guild_id", "owner_key", "name_key", name="uq_voices_owner_name"),
    Index("ix_voices_guild_name", "guild_id", "name_key"),
    Index("ix_voices_owner", "owner_id"),
)

# A member's defaults for /speak in one server; NULL fields mean "the built-in default".
voice_defaults = Table(
    "voice_defaults",
    metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("voice_id", String(ID_LENGTH), ForeignKey("voices.id", ondelete="SET NULL"), nullable=True),
    Column("exaggeration", Float, nullable=True),
    Column("temperature", Float, nullable=True),
    Column("cfg", Float, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

# A server's voice-library rules. clone_policy: "everyone" | "moderators". NULL limits mean
# the built-in defaults (VOICES_PER_MEMBER, VOICES_PER_SERVER).
voice_guild_settings = Table(
    "voice_guild_settings",
    metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("max_per_member", Integer, nullable=True),
    Column("max_per_server", Integer, nullable=True),
    Column("clone_policy", String(10), nullable=False, server_default=text("'everyone'")),
    Column("storage_channel_id", BigInteger, nullable=True),
    Column("updated_by", BigInteger, nullable=True),
    Column("updated_at", UTCDateTime, nullable=True),
)

# Server-side secrets the bot generates for itself (the clip-URL signing key). Never logged.
bot_secrets = Table(
    "bot_secrets",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Hands-free reading (bot.autoread): one row per server that set it up, one per opted-in member.
autoread_settings = Table(
    "autoread_settings",
    metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("text_channel_id", BigInteger, nullable=False),
    Column("voice_channel_id", BigInteger, nullable=True),
    Column("announce", Boolean, nullable=False, server_default=false()),
    Column("join_on_first_speaker", Boolean, nullable=False, server_default=true()),
    Column("updated_by", BigInteger, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)

autoread_members = Table(
    "autoread_members",
    metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("opted_in_at", UTCDateTime, nullable=False),
)
