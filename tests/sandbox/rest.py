"""The REST API under ``/api/v10``, the CDN, and the gateway route.

Answers carry ``Content-Type: application/json`` exactly (discord.py compares the header
verbatim before parsing JSON). Errors are Discord's JSON bodies with Discord's status codes,
so discord.py raises the same exception types it would against Discord. Requests about an
interaction that the sandbox refuses are also recorded on its ``InteractionHandle``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import BodyPartReader, web

from tests.sandbox import errors, voice_messages
from tests.sandbox.errors import DiscordAPIError
from tests.sandbox.interactions import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    AUTOCOMPLETE_RESULT,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE_MESSAGE,
    INITIAL_RESPONSE_WINDOW,
    MESSAGE_COMPONENT,
    MODAL,
    MODAL_SUBMIT,
    TOKEN_LIFETIME,
    UPDATE_MESSAGE,
    Callback,
    InteractionHandle,
    Refusal,
)
from tests.sandbox.messages import EPHEMERAL, LOADING, TYPE_CHAT_INPUT_COMMAND, TYPE_DEFAULT, Message
from tests.sandbox.modals import check_modal
from tests.sandbox.models import Channel, Guild
from tests.sandbox.permissions import Permission, has
from tests.sandbox.state import MessageBody, SandboxState, Upload

_log = logging.getLogger(__name__)

API = "/api/v10"
_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(data).encode(), headers={"Content-Type": "application/json"}
    )


def no_content() -> web.Response:
    return web.Response(status=204)


async def read_body(request: web.Request) -> MessageBody:
    """JSON, or multipart with ``payload_json`` and ``files[n]`` parts."""
    if request.content_type.startswith("multipart/"):
        fields: dict[str, Any] = {}
        uploads: dict[int, Upload] = {}
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            name = part.name or ""
            if name == "payload_json":
                fields = json.loads(await part.text())
            elif match := _FILE_FIELD.match(name):
                data = bytes(await part.read(decode=False))
                uploads[int(match.group(1))] = Upload(
                    part.filename or f"file{match.group(1)}", data, part.headers.get("Content-Type")
                )
        return MessageBody(fields, uploads)
    raw = await request.read()
    if not raw:
        return MessageBody({})
    try:
        return MessageBody(json.loads(raw))
    except ValueError:
        raise errors.DiscordAPIError(400, 50109, "The request body contains invalid JSON.") from None


def discord_errors(internal_errors: list[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Render ``DiscordAPIError`` as Discord's JSON error. A bug in the sandbox itself is
    recorded in ``internal_errors`` and answered with a 400 (not a 5xx, which discord.py
    would retry with sleeps) so the failing test stops at once."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except DiscordAPIError as exc:
            return json_response(exc.body(), exc.status)
        except web.HTTPException:
            raise
        except Exception as exc:
            _log.exception("sandbox bug while serving %s %s", request.method, request.path)
            internal_errors.append(f"{request.method} {request.path}: {exc!r}")
            return json_response({"code": 0, "message": f"sandbox internal error: {exc!r}"}, 400)

    return middleware


class RestApi:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        auth = self._authenticated
        return [
            web.get(f"{API}/users/@me", auth(self.me)),
            web.post(f"{API}/users/@me/channels", auth(self.open_dm)),
            web.get(f"{API}/users/{{user}}", auth(self.get_user)),
            web.get(f"{API}/oauth2/applications/@me", auth(self.application)),
            web.get(f"{API}/applications/@me", auth(self.application)),
            web.get(f"{API}/gateway", self.gateway),
            web.get(f"{API}/gateway/bot", auth(self.gateway_bot)),
            web.get(f"{API}/applications/{{app}}/commands", auth(self.list_commands)),
            web.put(f"{API}/applications/{{app}}/commands", auth(self.put_commands)),
            web.get(f"{API}/applications/{{app}}/guilds/{{guild}}/commands", auth(self.list_commands)),
            web.put(f"{API}/applications/{{app}}/guilds/{{guild}}/commands", auth(self.put_commands)),
            web.get(f"{API}/guilds/{{guild}}", auth(self.get_guild)),
            web.get(f"{API}/guilds/{{guild}}/channels", auth(self.get_guild_channels)),
            web.get(f"{API}/guilds/{{guild}}/roles", auth(self.get_guild_roles)),
            web.get(f"{API}/guilds/{{guild}}/members/{{user}}", auth(self.get_member)),
            web.get(f"{API}/channels/{{channel}}", auth(self.get_channel)),
            web.post(f"{API}/channels/{{channel}}/typing", auth(self.typing)),
            web.get(f"{API}/channels/{{channel}}/messages", auth(self.list_messages)),
            web.post(f"{API}/channels/{{channel}}/messages", auth(self.post_message)),
            web.get(f"{API}/channels/{{channel}}/messages/{{message}}", auth(self.get_message)),
            web.patch(f"{API}/channels/{{channel}}/messages/{{message}}", auth(self.patch_message)),
            web.delete(f"{API}/channels/{{channel}}/messages/{{message}}", auth(self.delete_message)),
            web.put(
                f"{API}/channels/{{channel}}/messages/{{message}}/reactions/{{emoji}}/@me",
                auth(self.add_own_reaction),
            ),
            web.delete(
                f"{API}/channels/{{channel}}/messages/{{message}}/reactions/{{emoji}}/@me",
                auth(self.remove_own_reaction),
            ),
            web.post(f"{API}/interactions/{{interaction}}/{{token}}/callback", self.callback),
            web.post(f"{API}/webhooks/{{app}}/{{token}}", self.followup),
            web.get(f"{API}/webhooks/{{app}}/{{token}}/messages/{{message}}", self.webhook_get),
            web.patch(f"{API}/webhooks/{{app}}/{{token}}/messages/{{message}}", self.webhook_patch),
            web.delete(f"{API}/webhooks/{{app}}/{{token}}/messages/{{message}}", self.webhook_delete),
            web.get("/cdn/{path:.+}", self.cdn),
            web.get("/media/{path:.+}", self.cdn),
            web.get("/gateway/", self.state.hub.handle),
            web.route("*", API + "/{tail:.*}", self.unhandled),
        ]

    # -- plumbing -------------------------------------------------------------------------

    def _authenticated(self, handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            if request.headers.get("Authorization") != f"Bot {self.state.token}":
                raise errors.unauthorized()
            return await handler(request)

        return checked

    async def unhandled(self, request: web.Request) -> web.Response:
        route = f"{request.method} {request.path}"
        self.state.unhandled_requests.append(route)
        _log.warning("sandbox: unhandled Discord route %s", route)
        raise errors.not_found()

    def _channel(self, request: web.Request) -> Channel:
        channel = self.state.find_channel(_int(request.match_info["channel"]))
        if channel is None:
            raise errors.unknown_channel()
        return channel

    # -- identity -------------------------------------------------------------------------

    async def me(self, request: web.Request) -> web.Response:
        user = {
            **self.state.bot_user.payload(),
            "verified": True,
            "mfa_enabled": False,
            "locale": "en-US",
            "email": None,
            "premium_type": 0,
        }
        return json_response(user)

    async def application(self, request: web.Request) -> web.Response:
        state = self.state
        return json_response(
            {
                "id": str(state.application_id),
                "name": state.bot_user.username,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "owner": state.application_owner.payload(),
                "team": None,
                "flags": 0,
                "hook": True,
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "approximate_guild_count": len(state.guilds),
                "bot": state.bot_user.payload(),
                "integration_types_config": {"0": {}},
            }
        )

    async def gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.state.hub.url})

    async def gateway_bot(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "url": self.state.hub.url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    # -- application commands -------------------------------------------------------------

    def _command_scope(self, request: web.Request) -> int | None:
        if _int(request.match_info["app"]) != self.state.application_id:
            raise errors.DiscordAPIError(
                403, 20012, "You are not authorized to perform this action on this application"
            )
        raw = request.match_info.get("guild")
        if raw is None:
            return None
        guild_id = _int(raw)
        if guild_id not in self.state.guilds:
            raise errors.missing_access()
        return guild_id

    async def list_commands(self, request: web.Request) -> web.Response:
        return json_response(self.state.commands.list(self._command_scope(request)))

    async def put_commands(self, request: web.Request) -> web.Response:
        scope = self._command_scope(request)
        body = await read_body(request)
        stored = self.state.commands.overwrite(body.fields, scope)  # type: ignore[arg-type]
        self.state.notifier.notify()
        return json_response(stored)

    # -- guilds and channels --------------------------------------------------------------

    def _guild(self, request: web.Request) -> Guild:
        guild = self.state.guilds.get(_int(request.match_info["guild"]))
        if guild is None:
            raise errors.unknown_guild()
        return guild

    async def get_guild(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        payload = guild.payload()
        for key in ("channels", "members", "voice_states", "presences", "threads"):
            payload.pop(key, None)
        return json_response(payload)

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        return json_response([c.payload() for c in self._guild(request).channels.values()])

    async def get_guild_roles(self, request: web.Request) -> web.Response:
        return json_response([r.payload() for r in self._guild(request).roles.values()])

    async def get_member(self, request: web.Request) -> web.Response:
        member = self._guild(request).members.get(_int(request.match_info["user"]))
        if member is None:
            raise errors.unknown_member()
        return json_response(member.payload())

    async def get_channel(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        if not has(channel.guild.bot_member.permissions_in(channel), Permission.VIEW_CHANNEL):
            raise errors.missing_access()
        return json_response(channel.payload())

    async def typing(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self._require(channel, Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES)
        return no_content()

    # -- channel messages -----------------------------------------------------------------

    def _require(self, channel: Channel, needed: int) -> int:
        perms = channel.guild.bot_member.permissions_in(channel)
        if not perms & Permission.VIEW_CHANNEL:
            raise errors.missing_access()
        if not has(perms, needed):
            raise errors.missing_permissions()
        return perms

    def _channel_message(self, request: web.Request, channel: Channel) -> Message:
        message = self.state.message_by_id.get(_int(request.match_info["message"]))
        if message is None or message.channel_id != channel.id or message.deleted or message.ephemeral:
            raise errors.unknown_message()
        return message

    # -- direct messages (text only: what the bot needs to tell one member something) --------

    async def get_user(self, request: web.Request) -> web.Response:
        user = self.state.users.get(_int(request.match_info["user"]))
        if user is None:
            raise errors.unknown_user()
        return json_response(user.payload())

    async def open_dm(self, request: web.Request) -> web.Response:
        recipient = self.state.users.get(_int(str((await request.json()).get("recipient_id", ""))))
        if recipient is None:
            raise errors.unknown_user()
        channel_id = next((c for c, u in self.state.dm_channels.items() if u == recipient.id), None)
        if channel_id is None:
            channel_id = self.state.new_id()
            self.state.dm_channels[channel_id] = recipient.id
        return json_response({"id": str(channel_id), "type": 1, "last_message_id": None,
                              "recipients": [recipient.payload()]})

    async def _post_direct_message(self, request: web.Request, recipient_id: int) -> web.Response:
        if recipient_id in self.state.dms_closed:
            raise errors.cannot_dm()
        body = await read_body(request)
        content = str(body.fields.get("content") or "")
        self.state.direct_messages.append((recipient_id, content))
        self.state.notifier.notify()
        return json_response({
            "id": str(self.state.new_id()), "channel_id": request.match_info["channel"], "type": 0,
            "author": self.state.bot_user.payload(), "content": content,
            "timestamp": self.state.clock.now().isoformat(), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [],
            "embeds": [], "pinned": False, "flags": 0,
        })

    async def post_message(self, request: web.Request) -> web.Response:
        recipient_id = self.state.dm_channels.get(_int(request.match_info["channel"]))
        if recipient_id is not None:
            return await self._post_direct_message(request, recipient_id)
        channel = self._channel(request)
        self._require(channel, Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES)
        body = await read_body(request)
        if body.uploads:
            self._require(channel, Permission.ATTACH_FILES)
        if body.fields.get("embeds"):
            self._require(channel, Permission.EMBED_LINKS)
        if voice_messages.is_voice_message(body.fields):
            if not has(channel.guild.bot_member.permissions_in(channel), Permission.SEND_VOICE_MESSAGES):
                raise voice_messages.cannot_send_here()
            voice_messages.check(body.fields, {i: u.filename for i, u in body.uploads.items()})
        message = self.state.create_message(
            channel, self.state.bot_user, body, limit=channel.guild.upload_limit
        )
        return json_response(message.payload())

    async def list_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self._require(channel, Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY)
        limit = max(1, min(100, int(request.query.get("limit", "50"))))
        before = request.query.get("before")
        after = request.query.get("after")
        visible = [m for m in self.state.messages_in(channel.id) if not m.deleted and not m.ephemeral]
        if before:
            visible = [m for m in visible if m.id < int(before)]
        if after:
            visible = [m for m in visible if m.id > int(after)]
            chosen = visible[:limit]
        else:
            chosen = visible[-limit:]
        return json_response([m.payload() for m in reversed(chosen)])

    async def get_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self._require(channel, Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY)
        return json_response(self._channel_message(request, channel).payload())

    async def patch_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        message = self._channel_message(request, channel)
        if message.author.id != self.state.bot_user.id:
            raise errors.cannot_edit_other_users_message()
        if message.flags & voice_messages.IS_VOICE_MESSAGE:
            raise voice_messages.cannot_edit()
        body = await read_body(request)
        self.state.edit_message(message, body, limit=channel.guild.upload_limit)
        return json_response(message.payload())

    async def delete_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        message = self._channel_message(request, channel)
        if message.author.id != self.state.bot_user.id:
            self._require(channel, Permission.MANAGE_MESSAGES)
        self.state.delete_message(message)
        return no_content()

    # -- reactions ------------------------------------------------------------------------

    def _emoji(self, request: web.Request) -> str:
        """The emoji path segment (aiohttp has percent-decoded it): a unicode emoji or
        ``name:id`` for a custom one; anything else is Discord's 10014 Unknown Emoji."""
        emoji = request.match_info["emoji"]
        if not emoji or (emoji.isascii() and not re.fullmatch(r"\w{2,32}:\d{1,20}", emoji)):
            raise errors.DiscordAPIError(400, 10014, "Unknown Emoji")
        return emoji

    async def add_own_reaction(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        message = self._channel_message(request, channel)
        emoji = self._emoji(request)
        needed = Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY
        if emoji not in message.reactions:
            needed |= Permission.ADD_REACTIONS  # the first of an emoji needs Add Reactions
        self._require(channel, needed)
        self.state.add_reaction(message, emoji, self.state.bot_user)
        return no_content()

    async def remove_own_reaction(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        message = self._channel_message(request, channel)
        self.state.remove_reaction(message, self._emoji(request), self.state.bot_user)
        return no_content()

    # -- interactions ---------------------------------------------------------------------

    @contextmanager
    def _recorded(self, handle: InteractionHandle, action: str) -> Iterator[None]:
        try:
            yield
        except DiscordAPIError as exc:
            handle.refusals.append(Refusal(action, exc.status, exc.code, exc.message))
            self.state.notifier.notify()
            raise

    async def callback(self, request: web.Request) -> web.Response:
        handle = self.state.interactions.get(_int(request.match_info["interaction"]))
        if handle is None or handle.token != request.match_info["token"]:
            raise errors.unknown_interaction()
        with self._recorded(handle, "callback"):
            body = await read_body(request)
            message = self._answer(handle, body)
        callback = handle.callback
        assert callback is not None
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return no_content()
        interaction: dict[str, Any] = {
            "id": str(handle.id),
            "type": handle.type,
            "response_message_loading": callback.type == DEFERRED_CHANNEL_MESSAGE,
            "response_message_ephemeral": bool(message is not None and message.ephemeral),
        }
        resource: dict[str, Any] = {"type": callback.type}
        if message is not None and callback.type != DEFERRED_UPDATE_MESSAGE:
            interaction["response_message_id"] = str(message.id)
            resource["message"] = message.payload()
        return json_response({"interaction": interaction, "resource": resource})

    def _answer(self, handle: InteractionHandle, body: MessageBody) -> Message | None:
        """Apply the initial response; the 3-second and acknowledge-once rules come first."""
        if handle.acknowledged:
            raise errors.already_acknowledged()
        if handle.age() > INITIAL_RESPONSE_WINDOW:
            raise errors.unknown_interaction()
        kind = body.fields.get("type")
        data = body.fields.get("data") or {}
        inner = MessageBody(data, body.uploads)
        state = self.state
        message: Message | None = None
        from_message = handle.source_message is not None
        if kind == CHANNEL_MESSAGE:
            message = state.create_message(
                handle.channel,
                state.bot_user,
                inner,
                limit=handle.attachment_size_limit,
                path=("data",),
                allow_ephemeral=True,
                type=TYPE_CHAT_INPUT_COMMAND if handle.type == APPLICATION_COMMAND else TYPE_DEFAULT,
                interaction=handle,
            )
        elif kind == DEFERRED_CHANNEL_MESSAGE:
            message = self._placeholder(handle, int(data.get("flags") or 0) & EPHEMERAL)
        elif kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
            if not (handle.type == MESSAGE_COMPONENT or (handle.type == MODAL_SUBMIT and from_message)):
                raise errors.invalid_callback_type(
                    "This callback type is only valid for component interactions"
                )
            message = handle.source_message
            assert message is not None
            if kind == UPDATE_MESSAGE:
                state.edit_message(message, inner, limit=handle.attachment_size_limit, path=("data",))
        elif kind == AUTOCOMPLETE_RESULT:
            if handle.type != AUTOCOMPLETE:
                raise errors.invalid_callback_type("Autocomplete results are only valid for autocomplete")
            handle.choices = list(data.get("choices") or [])
        elif kind == MODAL:
            if handle.type in (MODAL_SUBMIT, AUTOCOMPLETE):
                raise errors.invalid_callback_type("A modal cannot answer this interaction")
            check_modal(data)
            handle.modal = data
        else:
            raise errors.invalid_callback_type(f"Value {kind!r} is not a valid interaction callback type")
        if message is not None:
            handle.original_message_id = message.id
        handle.callback = Callback(kind, data, state.clock.now(), message)
        state.notifier.notify()
        return message

    def _placeholder(self, handle: InteractionHandle, ephemeral: int) -> Message:
        """A deferred response's "thinking..." message (flag LOADING, no content yet)."""
        state = self.state
        message = Message(
            id=state.new_id(),
            channel_id=handle.channel.id,
            guild_id=handle.channel.guild.id,
            author=state.bot_user,
            created_at=state.clock.now(),
            type=TYPE_CHAT_INPUT_COMMAND if handle.type == APPLICATION_COMMAND else TYPE_DEFAULT,
            flags=LOADING | ephemeral,
            interaction_id=handle.id,
            webhook_id=state.application_id,
            application_id=state.application_id,
            interaction_metadata={
                "id": str(handle.id),
                "type": handle.type,
                "user": handle.member.user.payload(),
                "authorizing_integration_owners": {"0": str(handle.channel.guild.id)},
            },
        )
        message.snapshot()
        state.message_by_id[message.id] = message
        state.channel_messages.setdefault(handle.channel.id, []).append(message)
        return message

    def _webhook_handle(self, request: web.Request) -> InteractionHandle:
        if _int(request.match_info["app"]) != self.state.application_id:
            raise errors.unknown_webhook()
        handle = self.state.interactions_by_token.get(request.match_info["token"])
        if handle is None:
            raise errors.unknown_webhook()
        return handle

    def _check_token(self, handle: InteractionHandle) -> None:
        if handle.age() > TOKEN_LIFETIME:
            raise errors.invalid_webhook_token()
        if not handle.acknowledged:
            # The token only becomes a webhook once the interaction was acknowledged.
            raise errors.unknown_webhook()

    def _webhook_message(self, request: web.Request, handle: InteractionHandle) -> Message:
        ref = request.match_info["message"]
        if ref == "@original":
            message = handle.original
        else:
            message = self.state.message_by_id.get(_int(ref))
            if message is not None and message.id not in (*handle.followup_ids, handle.original_message_id):
                message = None
        if message is None or message.deleted:
            raise errors.unknown_message()
        return message

    async def followup(self, request: web.Request) -> web.Response:
        handle = self._webhook_handle(request)
        with self._recorded(handle, "followup"):
            self._check_token(handle)
            body = await read_body(request)
            if voice_messages.is_voice_message(body.fields):
                voice_messages.check(body.fields, {i: u.filename for i, u in body.uploads.items()})
            original = handle.original
            assert handle.callback is not None
            if (
                handle.callback.type == DEFERRED_CHANNEL_MESSAGE
                and original is not None
                and original.loading
                and not original.deleted
            ):
                # Discord turns the first follow-up after a "thinking" defer into the original
                # message; it keeps the defer's ephemerality whatever the follow-up asked.
                message = self.state.edit_message(original, body, limit=handle.attachment_size_limit)
            else:
                message = self.state.create_message(
                    handle.channel,
                    self.state.bot_user,
                    body,
                    limit=handle.attachment_size_limit,
                    allow_ephemeral=True,
                    interaction=handle,
                )
            handle.followup_ids.append(message.id)
            self.state.notifier.notify()
        if request.query.get("wait", "").lower() in ("1", "true"):
            return json_response(message.payload())
        return no_content()

    async def webhook_get(self, request: web.Request) -> web.Response:
        handle = self._webhook_handle(request)
        with self._recorded(handle, "get_message"):
            self._check_token(handle)
            return json_response(self._webhook_message(request, handle).payload())

    async def webhook_patch(self, request: web.Request) -> web.Response:
        handle = self._webhook_handle(request)
        with self._recorded(handle, "edit_message"):
            self._check_token(handle)
            message = self._webhook_message(request, handle)
            body = await read_body(request)
            self.state.edit_message(message, body, limit=handle.attachment_size_limit)
        return json_response(message.payload())

    async def webhook_delete(self, request: web.Request) -> web.Response:
        handle = self._webhook_handle(request)
        with self._recorded(handle, "delete_message"):
            self._check_token(handle)
            self.state.delete_message(self._webhook_message(request, handle))
        return no_content()

    # -- CDN ------------------------------------------------------------------------------

    async def cdn(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        self.state.cdn_requests.append(path)
        self.state.notifier.notify()
        found = self.state.cdn.get(path)
        if found is None:
            return web.Response(status=404, text="Not Found")
        data, content_type = found
        return web.Response(body=data, headers={"Content-Type": content_type or "application/octet-stream"})


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise errors.DiscordAPIError(400, 50035, "Invalid Form Body") from None
