"""The gateway websocket: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, dispatch.

Frames to a session go through one ordered outbox, so an event queued by a builder or a
REST handler reaches the bot in the order it happened. ``GatewaySession.sync()`` is a
barrier: it asks the client for a heartbeat (op 1); discord.py answers with the last
sequence number it has *parsed*, so once that number reaches the last event sent, the
bot's cache reflects every event before it — no sleeps needed to observe e.g.
``member.voice`` after ``sandbox.move_member``.

Voice: op 4 from the bot updates its voice state and is answered, as Discord does, with
``VOICE_STATE_UPDATE`` (the bot's own) and ``VOICE_SERVER_UPDATE`` whose endpoint is the
sandbox's voice server for the channel's region (``tests.sandbox.voice_server``) and whose
token that server accepts once. A join without Connect permission is ignored, as on Discord.

A *move* (op 4 naming another channel while connected, or a moderator dragging the bot) is
answered the way discord.py's move handling expects of Discord: ``VOICE_STATE_UPDATE`` with
the new channel, a fresh ``VOICE_SERVER_UPDATE``, and — once the bot has read both — the old
voice websocket closed with 4014. ``state.voice_moves`` selects other sequences a real
server may produce, so the bot is tested not to depend on one: ``"keep-socket"`` (both
events, the old socket stays open) and ``"state-only"`` (only the voice state update).
Disconnecting the bot (a kick) sends ``VOICE_STATE_UPDATE`` with no channel; the client
then closes its voice websocket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from tests.sandbox.errors import SandboxError
from tests.sandbox.models import INTENT_GUILD_VOICE_STATES, Channel, Guild, Member, VoiceState
from tests.sandbox.permissions import Permission, has

if TYPE_CHECKING:
    from tests.sandbox.state import SandboxState

_log = logging.getLogger(__name__)

DISPATCH = 0
HEARTBEAT = 1
IDENTIFY = 2
PRESENCE_UPDATE = 3
VOICE_STATE_UPDATE = 4
RESUME = 6
RECONNECT = 7
REQUEST_GUILD_MEMBERS = 8
INVALID_SESSION = 9
HELLO = 10
HEARTBEAT_ACK = 11

HEARTBEAT_INTERVAL_MS = 41250
#: Members, presences, message content: refused with close code 4014 unless enabled.
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)
#: Discord's close code for "disconnected" (kicked, moved, channel deleted).
VOICE_CLOSE_DISCONNECTED = 4014

_CLOSE = object()


class GatewaySession:
    """One websocket connection from a client."""

    def __init__(self, hub: GatewayHub, ws: web.WebSocketResponse, number: int) -> None:
        self.hub = hub
        self.ws = ws
        self.number = number
        self.session_id = secrets.token_hex(16)
        self.intents = 0
        self.identified = False
        #: READY and every GUILD_CREATE have been parsed by the client.
        self.ready = False
        self.closed = False
        self.guild_ids: set[int] = set()
        self.seq = 0
        #: Highest sequence number the client reported in a heartbeat.
        self.client_seq = -1
        self.frames: list[dict[str, Any]] = []
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- sending --------------------------------------------------------------------------

    def dispatch(self, event: str, data: Any) -> int:
        self.seq += 1
        frame = {"op": DISPATCH, "t": event, "s": self.seq, "d": data}
        self.frames.append(frame)
        self._outbox.put_nowait(frame)
        return self.seq

    def send_op(self, op: int, data: Any) -> None:
        self._outbox.put_nowait({"op": op, "d": data})

    def close(self, code: int, reason: str = "") -> None:
        """Close after everything queued before has been sent."""
        self._outbox.put_nowait((_CLOSE, code, reason))

    async def write_loop(self) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, tuple) and item and item[0] is _CLOSE:
                await self.ws.close(code=item[1], message=item[2].encode())
                return
            if self.ws.closed:
                return
            try:
                await self.ws.send_str(json.dumps(item))
            except ConnectionError:
                return

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- barrier --------------------------------------------------------------------------

    async def sync(self) -> None:
        """Return once the client has parsed every event dispatched so far."""
        target = self.seq
        if self.closed or self.client_seq >= target:
            return
        self.send_op(HEARTBEAT, None)
        await self.hub.state.notifier.wait_until(
            lambda: self.closed or self.client_seq >= target,
            describe=f"the client to process gateway event #{target}",
        )

    @property
    def live(self) -> bool:
        return self.identified and not self.closed


class GatewayHub:
    """All gateway sessions, and the events the rest of the sandbox sends through them."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.sessions: list[GatewaySession] = []
        self.privileged_intents = 0
        self._follow_ups: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return self.state.base_url.replace("http://", "ws://", 1) + "/gateway/"

    def live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions if s.live]

    def dispatch(
        self,
        event: str,
        data: Any,
        *,
        guild_id: int | None = None,
        intent: int | None = None,
        for_session: Any = None,
    ) -> None:
        """Send ``event`` to every live session of the guild that has ``intent``;
        ``for_session(session, data)``, if given, makes each session's own copy (e.g. a
        message without content for a session lacking the Message Content intent)."""
        for session in self.live_sessions():
            if guild_id is not None and guild_id not in session.guild_ids:
                continue
            if intent is not None and not session.intents & intent:
                continue
            session.dispatch(event, data if for_session is None else for_session(session, data))

    def interaction_session(self) -> GatewaySession:
        """Discord delivers an interaction to one connection: the newest ready one."""
        for session in reversed(self.sessions):
            if session.live and session.ready:
                return session
        raise SandboxError(
            "no bot is connected to the sandbox gateway (start it and await sandbox.wait_ready())"
        )

    async def sync(self) -> None:
        """Barrier on every live session."""
        await asyncio.gather(*(s.sync() for s in self.live_sessions()))

    def guild_added(self, guild: Guild) -> None:
        for session in self.live_sessions():
            session.guild_ids.add(guild.id)
            session.dispatch("GUILD_CREATE", guild.payload(session.intents))

    async def close_all(self) -> None:
        for task in list(self._follow_ups):
            task.cancel()
        await asyncio.gather(*self._follow_ups, return_exceptions=True)
        for session in self.sessions:
            if not session.closed:
                session.close(1001, "sandbox shutting down")

    # -- voice ----------------------------------------------------------------------------

    def set_voice_state(
        self,
        guild: Guild,
        member: Member,
        channel_id: int | None,
        *,
        session_id: str | None = None,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> bool:
        """Move ``member`` (None: disconnect) and dispatch ``VOICE_STATE_UPDATE``.

        Returns True if the member was not in voice in this guild before."""
        previous = guild.voice_states.get(member.id)
        if channel_id is None:
            if previous is None:
                return False
            del guild.voice_states[member.id]
            data = previous.payload(member, channel_id=None)
        else:
            state = VoiceState(
                guild.id,
                channel_id,
                member.id,
                session_id or (previous.session_id if previous else secrets.token_hex(16)),
                self_mute,
                self_deaf,
            )
            guild.voice_states[member.id] = state
            data = state.payload(member, channel_id=channel_id)
        self.dispatch("VOICE_STATE_UPDATE", data, guild_id=guild.id, intent=INTENT_GUILD_VOICE_STATES)
        self.state.notifier.notify()
        return previous is None

    def _bot_voice_request(self, session: GatewaySession, data: dict[str, Any]) -> None:
        self.state.voice_requests.append(data)
        self.state.notifier.notify()
        guild = self.state.guilds.get(int(data["guild_id"]))
        if guild is None:
            return
        bot = guild.bot_member
        raw_channel = data.get("channel_id")
        if raw_channel is None:
            self.set_voice_state(guild, bot, None)
            return
        channel = guild.channels.get(int(raw_channel))
        if channel is None or not channel.is_voice:
            return
        perms = bot.permissions_in(channel)
        if not has(perms, Permission.VIEW_CHANNEL | Permission.CONNECT):
            _log.info("bot lacks Connect in %s; Discord ignores the voice state update", channel.name)
            return
        full = channel.user_limit and len(channel.voice_members) >= channel.user_limit
        if full and not has(perms, Permission.MOVE_MEMBERS) and guild.voice_channel_of(bot) is not channel:
            return
        self.place_bot(
            guild,
            channel,
            session_id=session.session_id,
            self_mute=bool(data.get("self_mute")),
            self_deaf=bool(data.get("self_deaf")),
        )

    def place_bot(
        self,
        guild: Guild,
        channel: Channel,
        *,
        session_id: str | None = None,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> None:
        """Put the bot in ``channel`` (joining or moving) and tell it as Discord does."""
        bot = guild.bot_member
        before = guild.voice_channel_of(bot)
        previous = guild.voice_states.get(bot.id)
        session_id = session_id or (previous.session_id if previous else secrets.token_hex(16))
        self.set_voice_state(
            guild, bot, channel.id, session_id=session_id, self_mute=self_mute, self_deaf=self_deaf
        )
        moved = before is not None and before is not channel
        mode = self.state.voice_moves
        if before is channel or (moved and mode == "state-only"):
            return
        self.send_voice_server(guild, channel, session_id)
        if moved and mode == "discord":
            old = [s for server in self.state.voice_servers.values() for s in server.sessions_of(bot.id)]
            self._spawn_after_sync(self._close_voice(old, VOICE_CLOSE_DISCONNECTED))

    def send_voice_server(self, guild: Guild, channel: Channel, session_id: str) -> None:
        """``VOICE_SERVER_UPDATE`` for the bot: the channel's region's server and a new token."""
        server = self.state.voice_server_for(channel)
        token = server.grant(
            guild_id=guild.id, user_id=guild.bot_member.id, session_id=session_id, channel_id=channel.id
        )
        self.dispatch(
            "VOICE_SERVER_UPDATE",
            {"token": token, "guild_id": str(guild.id), "endpoint": server.endpoint},
            guild_id=guild.id,
        )

    def kick_bot(self, guild: Guild) -> None:
        """A moderator disconnects the bot: ``VOICE_STATE_UPDATE`` without a channel. The
        client closes its voice websocket itself (a 4014 from the server at the same moment
        makes both ends close at once, and aiohttp then waits out its close timeout)."""
        self.set_voice_state(guild, guild.bot_member, None)

    async def _close_voice(self, sessions: list[Any], code: int) -> None:
        for voice in sessions:
            if not voice.closed:
                await voice.close(code, "Disconnected.")

    def _spawn_after_sync(self, coro: Any) -> None:
        async def run() -> None:
            await self.sync()
            await coro

        task = asyncio.create_task(run(), name="sandbox-voice-follow-up")
        self._follow_ups.add(task)
        task.add_done_callback(self._follow_ups.discard)

    # -- the websocket --------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        session = GatewaySession(self, ws, len(self.sessions))
        self.sessions.append(session)
        writer = asyncio.create_task(session.write_loop())
        session.send_op(HELLO, {"heartbeat_interval": HEARTBEAT_INTERVAL_MS})
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._on_frame(session, json.loads(message.data))
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            session.closed = True
            for task in list(session._tasks):
                task.cancel()
            if not writer.done():
                writer.cancel()
            await asyncio.gather(writer, *session._tasks, return_exceptions=True)
            self.state.notifier.notify()
        return ws

    def _on_frame(self, session: GatewaySession, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        data = frame.get("d")
        if op == HEARTBEAT:
            if isinstance(data, int):
                session.client_seq = max(session.client_seq, data)
            session.send_op(HEARTBEAT_ACK, None)
            self.state.notifier.notify()
        elif op == IDENTIFY:
            self._identify(session, data)
        elif op == RESUME:
            self._resume(session, data)
        elif op == VOICE_STATE_UPDATE and session.live:
            self._bot_voice_request(session, data)
        elif op == REQUEST_GUILD_MEMBERS and session.live:
            self._members_chunk(session, data)
        elif op == PRESENCE_UPDATE:
            pass
        elif not session.identified:
            session.close(4003, "Not authenticated.")
        else:
            session.close(4001, "Unknown opcode.")

    def _identify(self, session: GatewaySession, data: dict[str, Any]) -> None:
        if session.identified:
            session.close(4005, "Already authenticated.")
            return
        if data.get("token") != self.state.token:
            session.close(4004, "Authentication failed.")
            return
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self.privileged_intents:
            session.close(4014, "Disallowed intent(s).")
            return
        session.intents = intents
        session.identified = True
        guilds = list(self.state.guilds.values())
        session.guild_ids = {g.id for g in guilds}
        user = {**self.state.bot_user.payload(), "verified": True, "mfa_enabled": False, "email": None}
        ready: dict[str, Any] = {
            "v": 10,
            "user": user,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "application": {"id": str(self.state.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "auth": {},
        }
        if "shard" in data:
            ready["shard"] = data["shard"]
        session.dispatch("READY", ready)
        for guild in guilds:
            session.dispatch("GUILD_CREATE", guild.payload(intents))
        session.spawn(self._become_ready(session))
        self.state.notifier.notify()

    async def _become_ready(self, session: GatewaySession) -> None:
        await session.sync()
        session.ready = True
        self.state.notifier.notify()

    def _resume(self, session: GatewaySession, data: dict[str, Any]) -> None:
        old = next(
            (s for s in self.sessions if s is not session and s.session_id == data.get("session_id")), None
        )
        if old is None or data.get("token") != self.state.token:
            session.send_op(INVALID_SESSION, False)
            return
        # The old connection may not have finished closing on our side yet; it is over.
        old.closed = True
        session.session_id = old.session_id
        session.intents = old.intents
        session.guild_ids = set(old.guild_ids)
        session.seq = old.seq
        session.frames = list(old.frames)
        session.identified = True
        last = int(data.get("seq") or 0)
        for frame in old.frames:
            if frame["s"] > last:
                session._outbox.put_nowait(frame)
        session.dispatch("RESUMED", {})
        session.spawn(self._become_ready(session))
        self.state.notifier.notify()

    def _members_chunk(self, session: GatewaySession, data: dict[str, Any]) -> None:
        guild = self.state.guilds.get(int(data["guild_id"]))
        if guild is None:
            return
        wanted = {int(x) for x in data.get("user_ids") or []}
        query = (data.get("query") or "").lower()
        members = [
            m
            for m in guild.members.values()
            if (not wanted or m.id in wanted) and m.name.lower().startswith(query)
        ]
        limit = int(data.get("limit") or 0)
        if limit:
            members = members[:limit]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [str(x) for x in wanted - {m.id for m in members}],
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        session.dispatch("GUILD_MEMBERS_CHUNK", chunk)
