"""What the speech pipeline reports while it works, and what it hands back.

The pipeline knows nothing of Discord: it emits these plain events through an async
callback, and the cog renders them (the live job card) — see DESIGN, "Layers".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from bot.gateway.models import TTSParams

OutputKind = Literal["file", "voice", "both", "voice_message"]


@dataclass(frozen=True)
class Requester:
    """Who asked. ``guild_id`` is None for the CLI; ``role_ids`` feed quota resolution.

    ``operator`` marks the bot's operator (the CLI): not bound by member limits (cooldown,
    characters per request, daily requests and characters, in flight); the wallet guard, the
    rate guard, the job database and the usage ledger still apply.
    """

    user_id: int
    display_name: str
    guild_id: int | None = None
    role_ids: tuple[int, ...] = ()
    operator: bool = False


@dataclass(frozen=True)
class DeliveryTarget:
    """Where the audio goes, persisted with the job so a restarted bot can still deliver.

    ``interaction_token`` is a credential (it lets whoever holds it post and edit as the bot
    for 15 minutes), so it is kept out of the repr. The Discord layer does not fill it: the
    live job answers through its ``Interaction`` object and a resumed one through the channel,
    so persisting the token would only expose it (database dumps, DEBUG SQL logs).
    """

    kind: OutputKind = "file"
    channel_id: int | None = None
    application_id: int | None = None
    interaction_token: str | None = field(default=None, repr=False)
    voice_channel_id: int | None = None
    card_message_id: int | None = None


@dataclass(frozen=True)
class ResumedJob:
    """A job taken over after a restart, as the Discord layer needs it to deliver or close it.

    Built by ``SpeechService`` from the stored job, so the cogs never see a database row.
    ``channel_id`` is where to post (the target's channel, else the job's); ``refunded`` is
    whether nothing of the job was charged (only meaningful for a job that ended failed).
    """

    job_id: str
    user_id: int
    text: str
    voice_url: str | None
    params: TTSParams
    target: DeliveryTarget
    channel_id: int | None
    refunded: bool = False


@dataclass(frozen=True)
class CostPlan:
    """What a request will spend, known before anything is reserved."""

    chunks: tuple[str, ...]
    characters: int
    cost: Decimal
    #: The text as planned (stripped); ``SpeechService.start`` speaks exactly this.
    text: str = ""
    #: Every chunk is in the audio cache: no request, no quota, $0 (``bot.cache``).
    cached: bool = False
    #: The chunks (indexes) found in the audio cache: not requested, not charged. All of them
    #: when ``cached``; some of them for a partial hit (``characters`` and ``cost`` are then
    #: those of the other chunks only).
    from_cache: tuple[int, ...] = ()

    @property
    def requests(self) -> int:
        """The requests this plan sends to the provider (and reserves): the chunks not cached."""
        return len(self.chunks) - len(self.from_cache)


@dataclass(frozen=True)
class SpeechResult:
    job_id: str
    audio: bytes  # one WAV: the chunks joined in order with short pauses
    duration: float
    size: int
    cost: Decimal
    chunks: int
    text: str
    exaggeration: float
    temperature: float
    cfg: float
    voice_url: str | None = None
    #: Served from the audio cache (``cost`` is 0; no request was made).
    cached: bool = False
    #: How many of ``chunks`` came from the audio cache (all of them when ``cached``); ``cost``
    #: is what the others cost.
    cached_chunks: int = 0


@dataclass(frozen=True)
class SpeechEvent:
    job_id: str


@dataclass(frozen=True)
class QuotaReserved(SpeechEvent):
    plan: CostPlan


@dataclass(frozen=True)
class WaitingForSlot(SpeechEvent):
    """Held by the shared rate guard (busy, or the gateway said 429); ``position`` is 1-based."""

    position: int


@dataclass(frozen=True)
class Submitted(SpeechEvent):
    submitted_chunks: int
    chunks: int


@dataclass(frozen=True)
class Processing(SpeechEvent):
    elapsed: float
    done_chunks: int
    chunks: int
    status: str = "PROCESSING"


@dataclass(frozen=True)
class ChunkReady(SpeechEvent):
    """One chunk's WAV, in order: chunk ``index`` is emitted only after every earlier one.

    Voice playback starts on the first of these instead of waiting for the whole text.
    """

    index: int
    chunks: int
    audio: bytes = field(repr=False)
    #: The provider's model id for this chunk (from its status), for the audio cache's key.
    model_id: str | None = None


@dataclass(frozen=True)
class Completed(SpeechEvent):
    result: SpeechResult


@dataclass(frozen=True)
class Failed(SpeechEvent):
    user_message: str
    refunded: bool


@dataclass(frozen=True)
class Cancelled(SpeechEvent):
    refunded: bool


@dataclass(frozen=True)
class CatchingUp(SpeechEvent):
    """The job is still open but this run stopped working on it (the database is away, the
    bot is restarting, or another process took it over): it is finished and posted later by
    the reconciler. ``message`` is the card's line."""

    message: str
