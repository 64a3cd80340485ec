"""Settings: environment variables and an optional ``.env`` file, validated at start.

Field names are the environment variable names (case-insensitive), so ``DISCORD_TOKEN``
fills ``discord_token``. Secrets are ``SecretStr``: their repr is ``'**********'`` and they
are revealed only at the one place that sends them (the HTTP header, the Discord login).

Nothing is required at construction: each command asks for what it needs through
``require_*`` and gets a ``ConfigError`` with one line naming the variable when it is missing.
Every field here is listed, with its default, in ``.env.example`` and the README.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_GATEWAY_URL = "https://gateway.pixazo.ai"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/chatterbox.db"


class ConfigError(Exception):
    """A setting is missing or invalid. ``str(err)`` is one line fit for a terminal."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    # --- secrets -------------------------------------------------------------------
    discord_token: SecretStr | None = None
    chatterbox_api_key: SecretStr | None = None

    # --- Discord sharding (one process may run some shards; see README) ------------
    discord_shard_count: int | None = Field(None, ge=1, le=10000)
    discord_shard_ids: str | None = None  # comma-separated, e.g. "0,1"; all shards when unset

    # --- the Chatterbox gateway ---------------------------------------------------
    chatterbox_gateway_url: str = DEFAULT_GATEWAY_URL
    chatterbox_allow_http: bool = Field(
        False,
        description="Allow plain-http gateway and audio_url addresses (only for the local emulator).",
    )
    chatterbox_http_timeout: float = Field(30.0, gt=0, le=300)
    chatterbox_max_wait_seconds: float = Field(600.0, gt=0, le=3600)
    chatterbox_max_download_bytes: int = Field(50 * 1024 * 1024, gt=0)
    chatterbox_download_timeout: float = Field(120.0, gt=0, le=3600)
    chatterbox_price_per_request: Decimal = Field(Decimal("0.01"), ge=0)
    chatterbox_rate_per_second: float = Field(5.0, gt=0, le=1000)
    chatterbox_rate_burst: int = Field(10, ge=1, le=1000)
    chatterbox_max_retry_after: float = Field(120.0, gt=0, le=3600)
    chatterbox_wallet_probe_seconds: float = Field(600.0, gt=0)
    # Status reads of accepted jobs have their own budget, never behind submissions.
    chatterbox_status_rate_per_second: float = Field(20.0, gt=0, le=10000)
    # Push delivery (with PUBLIC_BASE_URL): "terminal" = one callback at the end, "sync" = also progress.
    chatterbox_webhook_mode: Literal["terminal", "sync"] = "terminal"
    chatterbox_push_fallback_seconds: float = Field(30.0, gt=0, le=3600)
    chatterbox_push_sweep_seconds: float = Field(1.0, gt=0, le=60)

    # --- text and chunking --------------------------------------------------------
    chatterbox_max_text_chars: int = Field(2000, ge=1, le=20000)
    chatterbox_chunk_chars: int = Field(280, ge=50, le=1000)
    chatterbox_max_chunks: int = Field(10, ge=1, le=100)
    # None: every chunk of a request at once (up to CHATTERBOX_MAX_CHUNKS); see chunk_concurrency.
    chatterbox_chunk_concurrency: int | None = Field(None, ge=1, le=100)
    chatterbox_chunk_pause_ms: int = Field(250, ge=0, le=5000)

    # --- voice reference clips (/speak voice:) -------------------------------------
    voice_ref_max_bytes: int = Field(10 * 1024 * 1024, gt=0)
    voice_ref_max_seconds: float = Field(30.0, gt=0)

    # --- saved voices (/voices) ----------------------------------------------------------
    voices_per_member: int = Field(5, ge=0, le=1000)
    voices_per_server: int = Field(100, ge=0, le=100000)
    voice_clip_url_ttl_seconds: float = Field(900.0, gt=0, le=3600)

    # --- storage --------------------------------------------------------------------
    database_url: str = DEFAULT_DATABASE_URL
    cache_dir: Path = Path("./data/cache")
    cache_max_mb: int = Field(1024, ge=0, description="Audio cache size cap in MiB; 0 turns the cache off.")
    database_retry_seconds: float = Field(60.0, ge=0, le=3600)

    # --- owned jobs (leases, the reconciler, deadlines) and stopping -----------------
    job_lease_seconds: float = Field(30.0, gt=0, le=3600)
    job_reconcile_seconds: float = Field(10.0, gt=0, le=3600)
    job_deadline_seconds: float = Field(3600.0, gt=0, le=7 * 24 * 3600)
    shutdown_grace_seconds: float = Field(10.0, ge=0, le=600)

    # --- quotas (built-in defaults; moderators override per guild, role and user) --------
    quota_reset_hour_utc: int = Field(0, ge=0, le=23)
    quota_requests_per_day: int = Field(20, ge=0)
    quota_chars_per_day: int = Field(5000, ge=0)
    quota_cooldown_seconds: int = Field(10, ge=0)
    quota_max_in_flight: int = Field(3, ge=1)
    # None: as long as /speak accepts (CHATTERBOX_MAX_TEXT_CHARS); see max_chars_per_request.
    quota_max_chars_per_request: int | None = Field(None, ge=1)

    # --- voice chat -----------------------------------------------------------------
    voice_idle_seconds: float = Field(120.0, gt=0)
    voice_max_queued_per_member: int = Field(3, ge=1, le=50)
    voice_connect_timeout: float = Field(8.0, gt=0, le=60)

    # --- the bot's HTTP server (callbacks, /healthz, /metrics) ------------------------
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)  # 0 = no HTTP server
    public_base_url: str | None = None  # https address the provider reaches; empty = polling only

    # --- hands-free reading (cogs/autoread; needs the privileged Message Content intent) ---
    autoread_enabled: bool = False
    autoread_max_chars: int = Field(300, ge=20, le=2000)

    # --- process --------------------------------------------------------------------
    ffmpeg_path: str | None = None
    log_level: str = "INFO"
    #: ``text`` (one readable line per record) or ``json`` (one JSON object per line).
    log_format: Literal["text", "json"] = "text"
    #: Where members can read this bot's source (shown by /about); empty = not published.
    about_source_url: str | None = None

    @field_validator("chatterbox_gateway_url")
    @classmethod
    def _gateway_url_is_http(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for the local emulator)")
        return value

    @field_validator("discord_shard_ids")
    @classmethod
    def _shard_ids_are_numbers(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = [p.strip() for p in value.split(",")]
        if not all(p.isdigit() for p in parts):
            raise ValueError("must be shard numbers separated by commas, such as 0,1")
        return ",".join(parts)

    def shard_ids(self) -> tuple[int, ...] | None:
        """The shards this process runs (None: all of them, or no sharding)."""
        if self.discord_shard_ids is None:
            return None
        ids = tuple(int(p) for p in self.discord_shard_ids.split(","))
        count = self.discord_shard_count
        if count is None:
            raise ConfigError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT (the total number of shards).")
        if any(i >= count for i in ids):
            raise ConfigError(f"DISCORD_SHARD_IDS must be below DISCORD_SHARD_COUNT ({count}).")
        return ids
    @field_validator("chatterbox_chunk_concurrency", "quota_max_chars_per_request", mode="before")
    @classmethod
    def _empty_means_default(cls, value: object) -> object:
        """``NAME=`` (as in .env.example) means "derive it", like leaving it out."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_base_url")
    @classmethod
    def _public_url_is_http(cls, value: str | None) -> str | None:
        value = (value or "").strip().rstrip("/")
        if not value:
            return None
        if not value.startswith(("https://", "http://")) or "?" in value or "#" in value:
            raise ValueError("must be an https:// address without a query (http:// for local tests)")
        return value

    @property
    def push_enabled(self) -> bool:
        """Webhooks are requested only with a public address and the HTTP server on."""
        return self.public_base_url is not None

    def require_public_base_url(self) -> str | None:
        """``PUBLIC_BASE_URL`` checked against ``CHATTERBOX_ALLOW_HTTP``; None when unset."""
        url = self.public_base_url
        if url is not None and url.startswith("http://") and not self.chatterbox_allow_http:
            raise ConfigError(
                "PUBLIC_BASE_URL is plain http: the provider sends callbacks to https:// only "
                "(set CHATTERBOX_ALLOW_HTTP=true only for the local emulator)."
            )
        return url

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("about_source_url")
    @classmethod
    def _source_url_is_web(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if not value:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be a web address (https://…)")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value

    # --- derived defaults ------------------------------------------------------------
    @property
    def chunk_concurrency(self) -> int:
        """Chunks of one request in flight at once: all of them by default, never more than
        ``CHATTERBOX_MAX_CHUNKS`` (the shared rate guard still paces every POST)."""
        wanted = self.chatterbox_chunk_concurrency or self.chatterbox_max_chunks
        return min(wanted, self.chatterbox_max_chunks)

    @property
    def max_chars_per_request(self) -> int:
        """The built-in per-request character limit: ``/speak``'s own limit unless lowered."""
        if self.quota_max_chars_per_request is None:
            return self.chatterbox_max_text_chars
        return self.quota_max_chars_per_request

    # --- what a command needs -------------------------------------------------------
    def require_discord_token(self) -> SecretStr:
        if self.discord_token is None or not self.discord_token.get_secret_value().strip():
            raise ConfigError(
                "DISCORD_TOKEN is not set: create a bot at https://discord.com/developers/applications "
                "(Bot → Reset Token) and put it in .env (see README, 'Discord setup')."
            )
        return self.discord_token

    def require_api_key(self) -> SecretStr:
        if self.chatterbox_api_key is None or not self.chatterbox_api_key.get_secret_value().strip():
            raise ConfigError(
                "CHATTERBOX_API_KEY is not set: put your Chatterbox TTS subscription key in .env "
                "(or run `chatterbox-bot emulator` and use the key it prints)."
            )
        if self.chatterbox_gateway_url.startswith("http://") and not self.chatterbox_allow_http:
            raise ConfigError(
                "CHATTERBOX_GATEWAY_URL is plain http: set CHATTERBOX_ALLOW_HTTP=true "
                "only for the local emulator."
            )
        return self.chatterbox_api_key


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning a validation failure into one ``ConfigError`` line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first.get("loc") else "a setting"
        raise ConfigError(f"{name} is invalid: {first['msg']}") from None
