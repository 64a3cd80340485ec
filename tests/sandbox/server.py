"""``DiscordSandbox``: the test-facing object that owns the server and the world.

Design decisions:
- One aiohttp server on 127.0.0.1, port 0, serves REST (``/api/v10``), the gateway
  (``/gateway/``) and the CDN (``/cdn/``, ``/media/``); discord.py is pointed at it by
  setting ``Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` (``configure_client``),
  which is endpoint configuration, not mocking: the client code that runs is unmodified.
- Commands are invoked from the schema the bot synced (``bot.tree.sync()`` against the
  sandbox), so a test exercises the real command definitions; ``register_commands`` covers
  tests that do not sync.
- Time comes from the injected clock (``SystemClock`` by default). The 3-second and
  15-minute rules and snowflake timestamps all read it; share a ``ManualClock`` with the bot
  to test the rules deterministically.
- Everything is awaited through events (``wait_for*``, the gateway barrier), never sleeps.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal, TypeVar

import aiohttp
from aiohttp import web

from bot.clock import Clock, SystemClock
from tests.sandbox.commands import MESSAGE_COMMAND, OptionEncoder, leaf_schema, nest_options, split_path
from tests.sandbox.errors import SandboxError
from tests.sandbox.gateway import GatewaySession
from tests.sandbox.interactions import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    InteractionHandle,
)
from tests.sandbox.messages import _ROLE_MENTION, _USER_MENTION, Message, StoredFile, guess_content_type
from tests.sandbox.modals import submission_problem
from tests.sandbox.models import Channel, Guild, Member, User
from tests.sandbox.permissions import DEFAULT_BOT, Permission, has, to_bits
from tests.sandbox.rest import RestApi, discord_errors
from tests.sandbox.state import DEFAULT_REGION, DEFAULT_UPLOAD_LIMIT, MessageBody, SandboxState, Upload
from tests.sandbox.voice_server import Listening, VoiceServer, VoiceTls
from tests.sandbox.waiting import DEFAULT_TIMEOUT

T = TypeVar("T")

_SELECT_TYPES = {3, 5, 6, 7, 8}


class DiscordSandbox:
    """A protocol-faithful fake of Discord on loopback for an unmodified discord.py client."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        token: str | None = None,
        privileged_intents: int = 0,
        wait_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        #: The bot token the sandbox accepts (REST ``Authorization`` and gateway IDENTIFY).
        self.token = token or f"sandbox.{secrets.token_urlsafe(24)}"
        self.state = SandboxState(self.clock, self.token, wait_timeout=wait_timeout)
        self.state.hub.privileged_intents = privileged_intents
        self._runner: web.AppRunner | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> DiscordSandbox:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        await self.close()
        if exc_type is None and self.state.internal_errors:
            raise SandboxError(f"the sandbox failed while serving: {self.state.internal_errors}")

    async def start(self) -> None:
        app = web.Application(
            middlewares=[discord_errors(self.state.internal_errors)], client_max_size=1024**3
        )
        app.add_routes(RestApi(self.state).routes())
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.state.base_url = f"http://127.0.0.1:{port}"
        await self._voice_server(DEFAULT_REGION)

    async def _voice_server(self, region: str) -> VoiceServer:
        server = self.state.voice_servers.get(region)
        if server is None:
            server = VoiceServer(region, on_change=self.state.notifier.notify)
            await server.start()
            self.state.voice_servers[region] = server
        return server

    async def close(self) -> None:
        await self.state.hub.close_all()
        for server in self.state.voice_servers.values():
            await server.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- addresses and identities ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.state.base_url

    @property
    def api_url(self) -> str:
        return f"{self.state.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.state.hub.url

    @property
    def bot_user(self) -> User:
        return self.state.bot_user

    @property
    def application_id(self) -> int:
        return self.state.application_id

    @property
    def guilds(self) -> list[Guild]:
        return list(self.state.guilds.values())

    @property
    def voice_requests(self) -> list[dict[str, Any]]:
        """Every op 4 the bot sent (guild_id, channel_id, self_mute, self_deaf)."""
        return self.state.voice_requests

    @property
    def cdn_requests(self) -> list[str]:
        return self.state.cdn_requests

    @property
    def unhandled_requests(self) -> list[str]:
        return self.state.unhandled_requests

    # -- building the world ---------------------------------------------------------------

    def add_guild(
        self, name: str, *, bot_permissions: Any = DEFAULT_BOT, upload_limit: int = DEFAULT_UPLOAD_LIMIT
    ) -> Guild:
        """A guild with an owner, @everyone (Discord's defaults) and the bot (a managed role
        with ``bot_permissions``). ``upload_limit`` is the per-file limit for channel
        messages and the default ``attachment_size_limit`` of interactions."""
        return self.state.add_guild(name, bot_permissions=to_bits(bot_permissions), upload_limit=upload_limit)

    def attachment(self, data: bytes, filename: str, content_type: str | None = None) -> StoredFile:
        """Upload a file as a member would for an attachment option; served by the CDN."""
        return self.state.store_file(
            data,
            filename,
            content_type or guess_content_type(filename),
            channel_id=self.state.application_id,
            ephemeral=True,
        )

    def set_application_owner(self, who: Member | User) -> None:
        """Make ``who`` the application's owner (``GET /oauth2/applications/@me``), as when
        the bot's developer is also a member of the server."""
        self.state.application_owner = who.user if isinstance(who, Member) else who

    def register_commands(
        self, commands: list[dict[str, Any]], guild: Guild | None = None
    ) -> list[dict[str, Any]]:
        """Register command JSON without the bot syncing, e.g.
        ``[c.to_dict(bot.tree) for c in bot.tree.get_commands()]``."""
        return self.state.commands.overwrite(commands, None if guild is None else guild.id)

    def commands(self, guild: Guild | None = None) -> list[dict[str, Any]]:
        """Commands as synced, global or for ``guild``."""
        return self.state.commands.list(None if guild is None else guild.id)

    # -- wiring discord.py ----------------------------------------------------------------

    @contextmanager
    def configure_client(self) -> Iterator[None]:
        """Point discord.py's REST base and gateway URL at the sandbox; restore on exit."""
        import discord.gateway
        import discord.http
        import yarl

        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_url
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    async def wait_ready(self) -> GatewaySession:
        """A connected session whose client has parsed READY and every GUILD_CREATE."""
        return await self._ready_session(0)

    async def _ready_session(self, first: int) -> GatewaySession:
        hub = self.state.hub

        def ready() -> GatewaySession | None:
            return next((s for s in hub.sessions[first:] if s.live and s.ready), None)

        return await self.state.notifier.wait_until(ready, describe="the bot to be ready")

    @asynccontextmanager
    async def run_bot(self, bot: Any) -> AsyncIterator[Any]:
        """Start ``bot`` (a ``discord.Client``) against the sandbox, wait until it has its
        guilds, and on exit close it and wait for the gateway to see it go."""
        with self.configure_client():
            first = len(self.state.hub.sessions)
            starting = asyncio.create_task(bot.start(self.token), name="sandbox-bot-start")
            ready = asyncio.create_task(self._ready_session(first))
            try:
                await asyncio.wait({starting, ready}, return_when=asyncio.FIRST_COMPLETED)
                if not ready.done():
                    ready.cancel()
                    await asyncio.gather(ready, return_exceptions=True)
                    starting.result()
                    raise SandboxError("bot.start() returned before the bot connected")
                session = ready.result()
                yield bot
            finally:
                if not ready.done():
                    ready.cancel()
                    await asyncio.gather(ready, return_exceptions=True)
                await bot.close()
                await asyncio.gather(starting, return_exceptions=True)
                # discord.py does not cancel its guild-ready delay task on close().
                pending_ready = getattr(getattr(bot, "_connection", None), "_ready_task", None)
                if pending_ready is not None and not pending_ready.done():
                    pending_ready.cancel()
                    await asyncio.gather(pending_ready, return_exceptions=True)
            await self.state.notifier.wait_until(
                lambda: session.closed, describe="the gateway to see the bot disconnect"
            )

    async def sync(self) -> None:
        """Barrier: return once every connected client has parsed every event sent so far."""
        await self.state.hub.sync()

    async def drop_connection(self, code: int = 4000) -> GatewaySession:
        """Close the gateway connections as a network failure would (close ``code``);
        discord.py reconnects and RESUMEs. Returns the resumed session once it is ready."""
        hub = self.state.hub
        first = len(hub.sessions)
        live = hub.live_sessions()
        if not live:
            raise SandboxError("no gateway connection to drop")
        for session in live:
            session.close(code, "connection dropped by the sandbox")
        return await self._ready_session(first)

    # -- interactions ---------------------------------------------------------------------

    async def slash(
        self,
        command: str | list[str] | tuple[str, ...],
        /,
        *,
        user: Member,
        channel: Channel | None = None,
        options: Mapping[str, Any] | None = None,
        validate: bool = True,
        raw_options: list[dict[str, Any]] | None = None,
        attachment_size_limit: int | None = None,
        locale: str = "en-US",
        **values: Any,
    ) -> InteractionHandle:
        """Invoke a synced slash command as ``user`` in ``channel`` (default: the guild's
        first text channel). Options come as keyword arguments and/or ``options=`` (for
        names that clash with this method's parameters). ``validate=False`` skips the checks
        Discord's client makes (types, ranges, required, who may see the command) so a test
        can send what a stale or hostile client could; ``raw_options`` sends the invoked
        (sub)command's option list verbatim."""
        guild = user.guild
        channel = channel or guild.text_channels[0]
        path = split_path(command)
        registered = self.state.commands.find(path[0], guild.id)
        if registered is None:
            raise SandboxError(
                f"/{path[0]} is not registered; sync the bot's tree (bot.tree.sync()) "
                "or call register_commands"
            )
        if validate:
            self._check_can_use(user, channel, registered)
        schema = leaf_schema(registered, path)
        resolved: dict[str, Any] = {}
        if raw_options is not None:
            leaf_options = raw_options
        else:
            encoder = OptionEncoder(user, channel, validate=validate)
            leaf_options = encoder.encode(schema, {**values, **(options or {})})
            resolved = encoder.resolved
        data: dict[str, Any] = {"id": registered["id"], "name": registered["name"], "type": 1}
        nested = nest_options(registered, path, leaf_options)
        if nested:
            data["options"] = nested
        if "guild_id" in registered:
            data["guild_id"] = registered["guild_id"]
        if resolved:
            data["resolved"] = resolved
        return self._dispatch(APPLICATION_COMMAND, user, channel, data, attachment_size_limit, locale)

    def post_as(self, member: Member, channel: Channel, content: str) -> Message:
        """A member's own message in ``channel`` (announced with MESSAGE_CREATE), e.g. the
        target of a message context-menu command."""
        state = self.state
        message = Message(id=state.new_id(), channel_id=channel.id, guild_id=channel.guild.id,
                          author=member.user, created_at=state.clock.now(), content=content)
        message.snapshot()
        state.message_by_id[message.id] = message
        state.channel_messages.setdefault(channel.id, []).append(message)
        state._announce("MESSAGE_CREATE", message, channel)
        state.notifier.notify()
        return message

    async def message_command(
        self, name: str, target: Message, *, user: Member, validate: bool = True
    ) -> InteractionHandle:
        """Invoke the message context-menu command ``name`` (Apps → name) on ``target`` as
        ``user``. As Discord does, ``data`` carries ``target_id`` and the message in
        ``resolved.messages``, with its user mentions resolved (user objects with ``member``)."""
        guild = user.guild
        channel = self.state.find_channel(target.channel_id)
        if channel is None or channel.guild is not guild:
            raise SandboxError(f"{target!r} is not in {user.name}'s guild")
        registered = self.state.commands.find(name, guild.id, kind=MESSAGE_COMMAND)
        if registered is None:
            raise SandboxError(f"message command {name!r} is not registered; sync the bot's tree")
        if validate:
            self._check_can_use(user, channel, registered)
        resolved = target.payload()
        mentioned = [guild.members[int(i)] for i in dict.fromkeys(_USER_MENTION.findall(target.content))
                     if int(i) in guild.members]
        resolved["mentions"] = [{**m.user.payload(), "member": m.payload(with_user=False)} for m in mentioned]
        resolved["mention_roles"] = [
            i for i in dict.fromkeys(_ROLE_MENTION.findall(target.content)) if int(i) in guild.roles
        ]
        data: dict[str, Any] = {
            "id": registered["id"],
            "name": registered["name"],
            "type": MESSAGE_COMMAND,
            "target_id": str(target.id),
            "resolved": {"messages": {str(target.id): resolved}},
        }
        if "guild_id" in registered:
            data["guild_id"] = registered["guild_id"]
        return self._dispatch(APPLICATION_COMMAND, user, channel, data, None, "en-US")

    async def autocomplete(
        self,
        command: str | list[str] | tuple[str, ...],
        focused: str,
        value: str,
        /,
        *,
        user: Member,
        channel: Channel | None = None,
        **values: Any,
    ) -> InteractionHandle:
        """Send an autocomplete interaction for option ``focused`` typed as ``value``;
        await ``handle.wait_for(lambda h: h.choices)`` for the bot's choices."""
        guild = user.guild
        channel = channel or guild.text_channels[0]
        path = split_path(command)
        registered = self.state.commands.find(path[0], guild.id)
        if registered is None:
            raise SandboxError(f"/{path[0]} is not registered")
        schema = leaf_schema(registered, path)
        encoder = OptionEncoder(user, channel, validate=False)
        leaf_options = encoder.encode(schema, values)
        spec = next((o for o in schema.get("options", []) if o["name"] == focused), None)
        if spec is None:
            raise SandboxError(f"no option {focused!r}")
        leaf_options.append({"name": focused, "type": spec["type"], "value": value, "focused": True})
        data: dict[str, Any] = {
            "id": registered["id"],
            "name": registered["name"],
            "type": 1,
            "options": nest_options(registered, path, leaf_options),
        }
        if "guild_id" in registered:
            data["guild_id"] = registered["guild_id"]
        return self._dispatch(AUTOCOMPLETE, user, channel, data, None, "en-US")

    async def click(
        self, message: Message, custom_id: str, *, user: Member, values: Iterable[str] | None = None
    ) -> InteractionHandle:
        """Click a button (or choose ``values`` in a select menu) on a message the bot sent."""
        component = message.component(custom_id)
        if message.deleted or component is None:
            raise SandboxError(f"{message!r} has no component {custom_id!r}")
        if component.get("disabled"):
            raise SandboxError(f"component {custom_id!r} is disabled; Discord's client cannot click it")
        if message.ephemeral and message.interaction_metadata is not None:
            if int(message.interaction_metadata["user"]["id"]) != user.id:
                raise SandboxError("only the user who received an ephemeral message can click it")
        channel = self.state.find_channel(message.channel_id)
        assert channel is not None
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
        if component["type"] in _SELECT_TYPES:
            data["values"] = list(values or [])
        return self._dispatch(MESSAGE_COMPONENT, user, channel, data, None, "en-US", source_message=message)

    async def submit_modal(
        self,
        handle: InteractionHandle,
        values: Mapping[str, str | list[str]],
        *,
        user: Member | None = None,
        validate: bool = True,
    ) -> InteractionHandle:
        """Fill in and submit the modal the bot answered ``handle`` with.

        As Discord's client, it refuses (``SandboxError``) a text outside the input's
        ``min_length``/``max_length``, an empty required field, or select values the menu
        does not offer (``tests.sandbox.modals``); ``validate=False`` submits them anyway,
        like a hand-made client, to test the bot's own checks."""
        modal = handle.modal
        if modal is None:
            raise SandboxError(f"{handle!r} was not answered with a modal")

        def submitted(component: dict[str, Any]) -> dict[str, Any] | None:
            kind = component.get("type")
            if kind == 1:
                children = [c for c in (submitted(x) for x in component.get("components", [])) if c]
                return {"type": 1, "components": children}
            if kind == 18:
                child = submitted(component["component"])
                return None if child is None else {"type": 18, "component": child}
            custom_id = component.get("custom_id")
            if custom_id is None:
                return None
            value = values.get(custom_id)
            problem = submission_problem(component, value) if validate else None
            if problem is not None:
                raise SandboxError(problem)
            if kind == 4:
                return {"type": 4, "custom_id": custom_id, "value": value or ""}
            return {"type": kind, "custom_id": custom_id, "values": list(value or [])}

        components = [c for c in (submitted(c) for c in modal.get("components", [])) if c]
        data = {"custom_id": modal["custom_id"], "components": components}
        member = user or handle.member
        return self._dispatch(
            MODAL_SUBMIT, member, handle.channel, data, None, "en-US", source_message=handle.source_message
        )

    def _check_can_use(self, member: Member, channel: Channel, command: dict[str, Any]) -> None:
        perms = member.permissions_in(channel)
        if not has(perms, Permission.VIEW_CHANNEL | Permission.USE_APPLICATION_COMMANDS):
            raise SandboxError(f"{member.name} cannot use application commands in #{channel.name}")
        required = command.get("default_member_permissions")
        if required is not None:
            guild_perms = member.guild_permissions
            if not (guild_perms & Permission.ADMINISTRATOR or has(guild_perms, int(required))):
                raise SandboxError(
                    f"Discord hides /{command['name']} from {member.name} (default_member_permissions="
                    f"{required}); pass validate=False to invoke it anyway"
                )

    def _dispatch(
        self,
        kind: int,
        member: Member,
        channel: Channel,
        data: dict[str, Any],
        attachment_size_limit: int | None,
        locale: str,
        *,
        source_message: Message | None = None,
    ) -> InteractionHandle:
        state = self.state
        session = state.hub.interaction_session()
        guild = member.guild
        if channel.guild is not guild:
            raise SandboxError(f"#{channel.name} is not in {member.name}'s guild")
        interaction_id = state.new_id()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
        limit = guild.upload_limit if attachment_size_limit is None else attachment_size_limit
        member_perms = member.permissions_in(channel)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(state.application_id),
            "type": kind,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "channel_id": str(channel.id),
            "channel": {**channel.payload(), "permissions": str(member_perms)},
            "member": member.payload(permissions=member_perms),
            "token": token,
            "version": 1,
            "app_permissions": str(guild.bot_member.permissions_in(channel)),
            "locale": locale,
            "guild_locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": limit,
        }
        if source_message is not None:
            payload["message"] = source_message.payload()
        handle = InteractionHandle(
            state,
            id=interaction_id,
            token=token,
            type=kind,
            member=member,
            channel=channel,
            attachment_size_limit=limit,
            payload=payload,
            source_message=source_message,
        )
        state.interactions[interaction_id] = handle
        state.interactions_by_token[token] = handle
        session.dispatch("INTERACTION_CREATE", payload)
        state.notifier.notify()
        return handle

    # -- messages -------------------------------------------------------------------------

    def messages(self, channel: Channel, *, include_ephemeral: bool = False) -> list[Message]:
        """Messages in ``channel`` (the bot's channel messages and interaction responses, and
        what members ``post``), oldest first, without deleted ones; ephemeral ones only on
        request."""
        return [
            m
            for m in self.state.messages_in(channel.id)
            if not m.deleted and (include_ephemeral or not m.ephemeral)
        ]

    async def wait_for_message(
        self,
        channel: Channel,
        predicate: Callable[[Message], bool] | None = None,
        *,
        after: Message | None = None,
        include_ephemeral: bool = False,
    ) -> Message:
        """The first message in ``channel`` (existing or future, newer than ``after``) that
        is not a "thinking" placeholder and matches ``predicate``."""

        def check() -> Message | None:
            for message in self.messages(channel, include_ephemeral=include_ephemeral):
                if after is not None and message.id <= after.id:
                    continue
                if not message.loading and (predicate is None or predicate(message)):
                    return message
            return None

        return await self.state.notifier.wait_until(check, describe=f"a message in #{channel.name}")

    async def wait_for(
        self,
        predicate: Callable[[], T],
        *,
        describe: str = "a sandbox condition",
    ) -> T:
        """Wait until ``predicate()`` is truthy, re-checked after every sandbox change."""
        return await self.state.notifier.wait_until(predicate, describe=describe)

    # -- members writing ------------------------------------------------------------------

    async def post(
        self, member: Member, channel: Channel, content: str = "", *, files: Iterable[tuple[str, bytes]] = ()
    ) -> Message:
        """``member`` sends a message in ``channel`` (``files``: (filename, bytes) attachments).
        Connected bots get MESSAGE_CREATE (with the content only if they have the Message
        Content intent, as on Discord); returns once they have processed it."""
        if channel.guild is not member.guild:
            raise SandboxError(f"#{channel.name} is not in {member.name}'s guild")
        uploads = [Upload(name, data, guess_content_type(name)) for name, data in files]
        message = self.state.member_message(channel, member.user, content, uploads)
        await self.sync()
        return message

    async def edit(self, message: Message, content: str) -> Message:
        """The author edits ``message``'s text (MESSAGE_UPDATE); returns once bots processed it."""
        self.state.edit_message(message, MessageBody({"content": content}), limit=DEFAULT_UPLOAD_LIMIT)
        await self.sync()
        return message

    async def delete(self, message: Message) -> None:
        """The author deletes ``message`` (MESSAGE_DELETE); returns once bots processed it."""
        self.state.delete_message(message)
        await self.sync()

    # -- voice ----------------------------------------------------------------------------

    @property
    def voice_server(self) -> VoiceServer:
        """The voice server of channels without a region."""
        return self.state.voice_servers[DEFAULT_REGION]

    @property
    def voice_servers(self) -> dict[str, VoiceServer]:
        return self.state.voice_servers

    def voice_connector(self) -> aiohttp.TCPConnector:
        """A connector for the bot (``discord.Client(connector=...)``) that trusts the voice
        servers' test CA: discord.py dials voice over ``wss://``. Create it on the bot's loop."""
        return aiohttp.TCPConnector(ssl=VoiceTls.get().client_context())

    def set_voice_moves(self, mode: Literal["discord", "keep-socket", "state-only"]) -> None:
        """How the sandbox answers moves of the bot (see ``tests.sandbox.gateway``)."""
        self.state.voice_moves = mode

    def listening(self, channel: Channel) -> Listening:
        """What a member in ``channel`` heard from the bot, over every voice server."""
        frames = sorted(
            (f for server in self.state.voice_servers.values() for f in server.listening(channel.id).frames),
            key=lambda f: (f.arrival),
        )
        return Listening(frames)

    async def delete_channel(self, channel: Channel) -> None:
        """A moderator deletes ``channel``: members in it (the bot too) are disconnected from
        voice first (``VOICE_STATE_UPDATE`` without a channel), then ``CHANNEL_DELETE``."""
        guild = channel.guild
        hub = self.state.hub
        members = sorted(channel.voice_members, key=lambda m: m is not guild.bot_member)  # the bot first
        for member in members:
            if member is guild.bot_member:
                hub.kick_bot(guild)
            else:
                hub.set_voice_state(guild, member, None)
        del guild.channels[channel.id]
        self.state.dispatch_guild_event(guild, "CHANNEL_DELETE", channel.payload())
        await self.sync()

    async def set_rtc_region(self, channel: Channel, region: str | None) -> None:
        """Change a voice channel's region as a moderator would: ``CHANNEL_UPDATE``, and a bot
        connected there gets ``VOICE_SERVER_UPDATE`` for the new region's server."""
        if region is not None:
            await self._voice_server(region)
        channel.rtc_region = region
        guild = channel.guild
        self.state.dispatch_guild_event(guild, "CHANNEL_UPDATE", channel.payload())
        state = guild.voice_states.get(guild.bot_member.id)
        if state is not None and state.channel_id == channel.id:
            self.state.hub.send_voice_server(guild, channel, state.session_id)
        await self.sync()

    async def move_member(
        self, member: Member, channel: Channel | None, *, self_mute: bool = False, self_deaf: bool = False
    ) -> None:
        """Move a member into a voice channel (``None``: disconnect them), dispatch
        ``VOICE_STATE_UPDATE``, and return once the bot has processed it."""
        if channel is not None and (channel.guild is not member.guild or not channel.is_voice):
            raise SandboxError(f"#{channel.name} is not a voice channel of {member.guild.name}")
        if member is member.guild.bot_member:
            # A moderator moving or disconnecting the bot: Discord's full sequence.
            hub = self.state.hub
            if channel is None:
                hub.kick_bot(member.guild)
            else:
                hub.place_bot(member.guild, channel, self_mute=self_mute, self_deaf=self_deaf)
            await self.sync()
            return
        self.state.hub.set_voice_state(
            member.guild,
            member,
            None if channel is None else channel.id,
            self_mute=self_mute,
            self_deaf=self_deaf,
        )
        await self.sync()
