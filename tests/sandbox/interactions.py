"""Interaction handles: one per dispatched interaction, recording how the bot answered.

The REST layer writes into the handle (initial callback, follow-ups, edits, refusals);
tests read it and await it. Every wait is an event wait through the sandbox's notifier.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from tests.sandbox.messages import EPHEMERAL, Message
from tests.sandbox.models import Channel, Member

if TYPE_CHECKING:
    from tests.sandbox.state import SandboxState

T = TypeVar("T")

APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
AUTOCOMPLETE = 4
MODAL_SUBMIT = 5

PONG = 1
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
AUTOCOMPLETE_RESULT = 8
MODAL = 9

#: Discord's limits, in seconds.
INITIAL_RESPONSE_WINDOW = 3.0
TOKEN_LIFETIME = 15 * 60.0


@dataclass(frozen=True)
class Callback:
    """The accepted initial response (``POST /interactions/{id}/{token}/callback``)."""

    type: int
    data: dict[str, Any]
    at: datetime
    #: The message it created or updated (types 4, 5, 7; type 6's component message).
    message: Message | None


@dataclass(frozen=True)
class Refusal:
    """A request about this interaction that the sandbox refused with a Discord error."""

    action: str
    status: int
    code: int
    message: str


class InteractionHandle:
    """What a test holds after ``sandbox.slash(...)`` / ``sandbox.click(...)``."""

    def __init__(
        self,
        state: SandboxState,
        *,
        id: int,
        token: str,
        type: int,
        member: Member,
        channel: Channel,
        attachment_size_limit: int,
        payload: dict[str, Any],
        source_message: Message | None = None,
    ) -> None:
        self._state = state
        self.id = id
        self.token = token
        self.type = type
        self.member = member
        self.channel = channel
        self.attachment_size_limit = attachment_size_limit
        self.payload = payload
        #: For component clicks and modal submits from a message: the message clicked.
        self.source_message = source_message
        self.created_at = state.clock.now()
        self.created_monotonic = state.clock.monotonic()
        self.callback: Callback | None = None
        self.refusals: list[Refusal] = []
        self.original_message_id: int | None = None
        self.followup_ids: list[int] = []
        #: The modal the bot answered with (callback type 9), if any.
        self.modal: dict[str, Any] | None = None
        #: Choices the bot answered an autocomplete with (callback type 8).
        self.choices: list[dict[str, Any]] | None = None

    # -- reading --------------------------------------------------------------------------

    @property
    def acknowledged(self) -> bool:
        return self.callback is not None

    @property
    def deferred(self) -> bool:
        return self.callback is not None and self.callback.type in (
            DEFERRED_CHANNEL_MESSAGE,
            DEFERRED_UPDATE_MESSAGE,
        )

    @property
    def original(self) -> Message | None:
        """The ``@original`` message as it is now (``history`` holds every revision)."""
        if self.original_message_id is None:
            return None
        return self._state.message_by_id.get(self.original_message_id)

    @property
    def ephemeral(self) -> bool:
        original = self.original
        return bool(original is not None and original.flags & EPHEMERAL)

    @property
    def followups(self) -> list[Message]:
        """Messages sent through ``POST /webhooks/{app}/{token}``, in order. After a deferred
        "thinking" response, Discord turns the first follow-up into the original message;
        that message is then both ``original`` and ``followups[0]``."""
        return [self._state.message_by_id[i] for i in self.followup_ids]

    @property
    def messages(self) -> list[Message]:
        """The original (if a message) then the follow-ups, without duplicates."""
        out: list[Message] = []
        if self.original is not None:
            out.append(self.original)
        out.extend(m for m in self.followups if m.id != self.original_message_id)
        return out

    # -- waiting --------------------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[InteractionHandle], T],
        *,
        describe: str = "an interaction condition",
    ) -> T:
        """Wait until ``predicate(handle)`` is truthy; returns its value."""
        return await self._state.notifier.wait_until(
            lambda: predicate(self), describe=lambda: f"{describe} on {self!r}"
        )

    async def response(self) -> Callback:
        """The initial response, once the bot sent it."""
        return await self.wait_for(lambda h: h.callback, describe="the initial response")

    async def wait_for_original(self, predicate: Callable[[Message], bool] | None = None) -> Message:
        """The @original message once it exists, is no longer "thinking", and matches."""

        def check(handle: InteractionHandle) -> Message | None:
            message = handle.original
            if message is None or message.loading or message.deleted:
                return None
            return message if predicate is None or predicate(message) else None

        return await self.wait_for(check, describe="the original response to match")

    async def wait_for_followup(self, predicate: Callable[[Message], bool] | None = None) -> Message:
        """The first follow-up (existing or future) that matches."""

        def check(handle: InteractionHandle) -> Message | None:
            return next((m for m in handle.followups if predicate is None or predicate(m)), None)

        return await self.wait_for(check, describe="a follow-up to match")

    async def wait_for_message(self, predicate: Callable[[Message], bool]) -> Message:
        """The first of ``messages`` (original or follow-up, as currently edited) that matches."""

        def check(handle: InteractionHandle) -> Message | None:
            return next((m for m in handle.messages if not m.loading and predicate(m)), None)

        return await self.wait_for(check, describe="a response message to match")

    async def wait_for_refusal(self, code: int | None = None) -> Refusal:
        """The first refused request (optionally with Discord error ``code``)."""

        def check(handle: InteractionHandle) -> Refusal | None:
            return next((r for r in handle.refusals if code is None or r.code == code), None)

        return await self.wait_for(check, describe=f"a refusal with code {code}")

    # -- rules ----------------------------------------------------------------------------

    def age(self) -> float:
        return self._state.clock.monotonic() - self.created_monotonic

    def __repr__(self) -> str:
        kind = {APPLICATION_COMMAND: "command", MESSAGE_COMPONENT: "component", MODAL_SUBMIT: "modal"}.get(
            self.type, str(self.type)
        )
        answered = None if self.callback is None else self.callback.type
        return (
            f"<InteractionHandle {kind} id={self.id} callback={answered} "
            f"followups={len(self.followup_ids)} refusals={[r.code for r in self.refusals]}>"
        )
