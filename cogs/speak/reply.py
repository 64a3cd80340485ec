"""Talking back to one /speak: through its interaction while the token lives, else the channel.

Discord's interaction token (follow-ups, edits of the original response) dies 15 minutes
after the command. A long job can outlive it, so every send and edit here goes:

1. through the interaction while it is younger than ``TOKEN_SAFE_AGE`` (14 min, a margin for
   a slow upload) by the bot's own clock — the proactive check;
2. else, or when Discord answers 50027 (Invalid Webhook Token) / 10015 (Unknown Webhook)
   anyway — the robust check, e.g. when clocks disagree — through the channel: a normal
   message, or an edit of the card by its message id (the bot authored it).

Ephemeral messages exist only through the token; after it died they cannot be sent, so
``tell`` logs instead (the card still shows the outcome publicly). Every message is sent with
``AllowedMentions.none()``: spoken text quoted back can never ping anyone.
"""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from typing import Any

import discord

from bot.clock import Clock

log = logging.getLogger(__name__)

TOKEN_SAFE_AGE = timedelta(minutes=14)
DEAD_TOKEN_CODES = frozenset({50027, 10015})


def is_dead_token(exc: discord.HTTPException) -> bool:
    return exc.code in DEAD_TOKEN_CODES


class Reply:
    """The ways back to the member and the channel for one /speak (or a resumed job).

    ``interaction`` is None for a job resumed after a restart: then only the channel is used.
    ``card_id`` is the card message's id, for editing it through the channel.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        channel: discord.abc.Messageable,
        interaction: discord.Interaction[Any] | None = None,
        card_id: int | None = None,
    ) -> None:
        self.clock = clock
        self.channel = channel
        self.interaction = interaction
        self.card_id = card_id
        self._token_dead = interaction is None

    def token_alive(self) -> bool:
        if self._token_dead:
            return False
        assert self.interaction is not None
        if self.clock.now() - self.interaction.created_at >= TOKEN_SAFE_AGE:
            log.info("interaction token of /speak %s is too old; using channel messages", self.interaction.id)
            self._token_dead = True
        return not self._token_dead

    def _token_died(self, exc: discord.HTTPException) -> None:
        log.info("Discord refused the interaction token (%s); using channel messages", exc.code)
        self._token_dead = True

    async def edit_card(self, content: str, *, view: discord.ui.View | None) -> None:
        if self.token_alive():
            assert self.interaction is not None
            try:
                await self.interaction.edit_original_response(
                    content=content, view=view
                )
                return
            except discord.HTTPException as exc:
                if not is_dead_token(exc):
                    raise
                self._token_died(exc)
        partial_message = getattr(self.channel, "get_partial_message", None)
        if self.card_id is None or partial_message is None:
            return
        message = partial_message(self.card_id)
        await message.edit(content=content, view=view)

    async def post(
        self, content: str, *, data: bytes | None = None, filename: str | None = None,
        view: discord.ui.View | None = None,
    ) -> None:
        """A public message (with a file and buttons): a follow-up, else a channel message."""
        views: dict[str, Any] = {} if view is None else {"view": view}
        if self.token_alive():
            assert self.interaction is not None
            try:
                await self.interaction.followup.send(
                    content, file=_file(data, filename), wait=True, **views
                )
                return
            except discord.HTTPException as exc:
                if not is_dead_token(exc):
                    raise
                self._token_died(exc)
        if data is None:
            await self.channel.send(content, **views)
        else:
            await self.channel.send(content, file=_file(data, filename), **views)

    async def tell(self, content: str) -> None:
        """An ephemeral note to the member; logged instead once the token is dead."""
        if self.token_alive():
            assert self.interaction is not None
            try:
                await self.interaction.followup.send(content, ephemeral=True)
                return
            except discord.HTTPException as exc:
                if not is_dead_token(exc):
                    raise
                self._token_died(exc)
        log.info("could not tell the member privately (token expired): %s", content[:200])

    async def refuse(self, content: str) -> None:
        """After a public "thinking" defer: drop the placeholder and answer ephemerally.

        Discord turns the first follow-up after a thinking defer into the original response
        (keeping the defer's public visibility), so the placeholder is deleted first and the
        refusal then arrives as a new, ephemeral message only the member sees.
        """
        if self.interaction is None:
            return
        try:
            await self.interaction.delete_original_response()
        except discord.HTTPException as exc:
            log.debug("could not delete the thinking message: %s", exc)
        await self.tell(content)


def _file(data: bytes | None, filename: str | None) -> Any:
    if data is None:
        return discord.utils.MISSING
    return discord.File(io.BytesIO(data), filename=filename or "speech.wav")
