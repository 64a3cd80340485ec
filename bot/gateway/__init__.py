"""The Chatterbox TTS gateway: models, typed errors, the client and its polling schedule.

The local emulator lives in ``bot.gateway.emulator`` and is imported from there explicitly
(it is a test and developer tool, not part of the client's public surface).
"""

from bot.gateway.client import STATUS_PATH, SUBMIT_PATH, ChatterboxClient, StatusCallback
from bot.gateway.errors import (
    BadRequest,
    DownloadError,
    Forbidden,
    GatewayError,
    GatewayUnreachable,
    InsufficientBalance,
    InvalidTTSRequest,
    JobErrored,
    JobFailed,
    ProtocolError,
    RateLimited,
    ServerError,
    Unauthorized,
    WaitTimeout,
)
from bot.gateway.limits import RateLimiter, backoff_delay, parse_retry_after
from bot.gateway.models import (
    PARAM_RANGES,
    JobStatus,
    StatusDocument,
    StatusOutput,
    SubmitAccepted,
    TTSParams,
    TTSRequest,
    Webhook,
    check_params,
    parse_timestamp,
)
from bot.gateway.polling import ObservedDurations, PollPlan, PollPolicy

__all__ = [
    "PARAM_RANGES",
    "STATUS_PATH",
    "SUBMIT_PATH",
    "BadRequest",
    "ChatterboxClient",
    "DownloadError",
    "Forbidden",
    "GatewayError",
    "GatewayUnreachable",
    "InsufficientBalance",
    "InvalidTTSRequest",
    "JobErrored",
    "JobFailed",
    "JobStatus",
    "ObservedDurations",
    "PollPlan",
    "PollPolicy",
    "ProtocolError",
    "RateLimited",
    "RateLimiter",
    "ServerError",
    "StatusCallback",
    "StatusDocument",
    "StatusOutput",
    "SubmitAccepted",
    "TTSParams",
    "TTSRequest",
    "Unauthorized",
    "WaitTimeout",
    "Webhook",
    "backoff_delay",
    "check_params",
    "parse_retry_after",
    "parse_timestamp",
]
