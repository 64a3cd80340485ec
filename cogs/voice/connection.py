"""The bot's voice connection: ``discord.VoiceClient`` made to fail fast and say why.

Design decisions (each found by running the unmodified client against the test suite's
voice server, ``tests/sandbox/voice_server.py``):

* **One attempt per join.** The player connects with ``reconnect=False``: discord.py then
  raises the voice server's close (``ConnectionClosed`` with 4017 when DAVE is required and
  the handshake fails) at once, instead of retrying five times, leaving and re-joining the
  channel before each try. The whole attempt is bounded by ``VOICE_CONNECT_TIMEOUT``.
* **Recovery is the player's, with a fresh client.** discord.py's own in-place recovery
  (``reconnect=True`` after 4006/4009/a network drop, and ``move_to``) re-runs IP discovery
  on a new UDP socket while its socket-reader thread still waits up to 30 s on the old one,
  so the discovery reply is not read and the reconnect/move times out. A new
  ``VoiceClient`` has a new reader, so the player drops the old client and connects again.
* **A kick is told apart from a drop** by Discord's word: a ``VOICE_STATE_UPDATE`` without
  a channel that arrives while the client is connected (discord.py marks itself
  disconnected before it sends its own leave, so the answer to our or discord.py's leave
  never counts). ``removed_by_discord`` is then True and the player ends the clip; any
  other end of the connection is a drop the player recovers from.
* **Why a join failed** comes from how far the handshake got: the close code, or for a
  timeout whether Discord sent the voice server (``endpoint``), whether the voice server
  said READY (``ssrc``) and whether the UDP discovery led to a session key (``mode``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import discord

log = logging.getLogger(__name__)


class PlayerVoiceClient(discord.VoiceClient):
    """``discord.VoiceClient`` with the observations the player needs (see the module doc)."""

    def __init__(
        self,
        client: discord.Client,
        channel: discord.abc.Connectable,
        *,
        on_cleanup: Callable[[PlayerVoiceClient], None] | None = None,
    ) -> None:
        #: Discord removed the bot from voice (kick, channel deleted) while connected.
        self.removed_by_discord = False
        self._on_cleanup = on_cleanup
        super().__init__(client, channel)

    async def connect(
        self,
        *,
        reconnect: bool,
        timeout: float,  # noqa: ASYNC109  (discord.py's signature)
        self_deaf: bool = False,
        self_mute: bool = False,
    ) -> None:
        await super().connect(reconnect=reconnect, timeout=timeout, self_deaf=self_deaf, self_mute=self_mute)
        # Without reconnect, discord.py's websocket poller ends by raising the close that ended
        # the connection (4006 ...); nobody awaits it, so take the result here (else asyncio
        # logs "Task exception was never retrieved" for a drop the player recovers from).
        runner = getattr(self._connection, "_runner", None)
        if isinstance(runner, asyncio.Task):
            runner.add_done_callback(_note_end)

    async def on_voice_state_update(self, data: Any) -> None:
        if data.get("channel_id") is None and self.is_connected():
            self.removed_by_discord = True
        await super().on_voice_state_update(data)

    def transport_open(self) -> bool:
        """Connected and the voice websocket has not been closed under us (read from the
        player thread: a drop is visible here before discord.py has reacted to it)."""
        if not self.is_connected():
            return False
        socket = getattr(getattr(self, "ws", None), "ws", None)
        return socket is None or getattr(socket, "close_code", None) is None

    def cleanup(self) -> None:
        super().cleanup()
        if self._on_cleanup is not None:
            self._on_cleanup(self)


def _note_end(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.info("voice connection ended: %s", exc)


def describe_join_failure(
    exc: BaseException, attempt: PlayerVoiceClient | None, channel_name: str, timeout: float
) -> str:
    """A clause for "posted instead because …" naming what happened."""
    if isinstance(exc, discord.ConnectionClosed):
        code = exc.code
        if code == 4017:
            return "the voice server required end-to-end encryption (DAVE) and the handshake failed"
        if code in (4016, 4012):
            return "the voice connection's encryption could not be agreed with Discord"
        return f"Discord's voice server refused the connection (code {code})"
    if isinstance(exc, RuntimeError) and "davey" in str(exc).lower():
        return "voice encryption (DAVE) is not available on this bot"
    seconds = f"{timeout:g} s"
    if isinstance(exc, TimeoutError):
        if attempt is None or not attempt.endpoint:
            return f"Discord did not let me join #{channel_name} within {seconds}"
        if not attempt.ssrc:  # no READY
            return f"Discord's voice server did not answer within {seconds}"
        if not attempt.mode:  # no SESSION_DESCRIPTION: IP discovery got no reply
            return f"Discord's voice server was unreachable (no UDP reply within {seconds})"
        return f"joining #{channel_name} timed out after {seconds}"
    if isinstance(exc, (OSError, aiohttp.ClientError)):
        return "Discord's voice server was unreachable"
    return f"I couldn't connect to #{channel_name}"
