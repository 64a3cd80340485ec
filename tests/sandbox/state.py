"""The sandbox's shared state and its rules for messages.

One ``SandboxState`` holds the world (users, guilds), the messages and files the bot posted,
the interactions in flight, the command registry and the gateway hub. REST handlers and
gateway sessions both act on it; every mutation calls ``notifier.notify()`` so tests can
await changes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from bot.clock import Clock
from tests.sandbox import errors
from tests.sandbox.commands import CommandRegistry
from tests.sandbox.gateway import GatewayHub
from tests.sandbox.interactions import InteractionHandle
from tests.sandbox.messages import EPHEMERAL, LOADING, TYPE_DEFAULT, Message, StoredFile, guess_content_type
from tests.sandbox.models import (
    INTENT_GUILD_MESSAGE_REACTIONS,
    INTENT_GUILD_MESSAGES,
    INTENT_MESSAGE_CONTENT,
    Channel,
    Guild,
    User,
)
from tests.sandbox.permissions import DEFAULT_BOT
from tests.sandbox.snowflake import SnowflakeFactory
from tests.sandbox.voice_server import VoiceServer
from tests.sandbox.waiting import DEFAULT_TIMEOUT, Notifier

#: Discord's default per-file upload limit for a guild without boosts (10 MiB).
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
#: The region of voice channels whose ``rtc_region`` is automatic.
DEFAULT_REGION = "local"
MAX_CONTENT = 2000
MAX_EMBEDS = 10

SUPPRESS_EMBEDS = 1 << 2
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_VOICE_MESSAGE = 1 << 13
IS_COMPONENTS_V2 = 1 << 15
_SETTABLE_FLAGS = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_VOICE_MESSAGE | IS_COMPONENTS_V2


@dataclass(frozen=True)
class Upload:
    """One ``files[n]`` part of a multipart request."""

    filename: str
    data: bytes
    content_type: str | None


@dataclass
class MessageBody:
    """A message create/edit request: the JSON fields and the uploaded files by index."""

    fields: dict[str, Any]
    uploads: dict[int, Upload] = field(default_factory=dict)


class SandboxState:
    def __init__(self, clock: Clock, token: str, *, wait_timeout: float = DEFAULT_TIMEOUT) -> None:
        self.clock = clock
        self.token = token
        self.new_id = SnowflakeFactory(clock)
        self.notifier = Notifier(wait_timeout)
        self.base_url = ""
        self.application_id = self.new_id()
        self.bot_user = User(self.new_id(), "Sandbox Bot", bot=True)
        self.application_owner = User(self.new_id(), "app-owner")
        self.users: dict[int, User] = {u.id: u for u in (self.bot_user, self.application_owner)}
        self.guilds: dict[int, Guild] = {}
        self.hub = GatewayHub(self)
        self.commands = CommandRegistry(self.application_id, self.new_id)
        self.cdn: dict[str, tuple[bytes, str | None]] = {}
        #: Paths fetched from the CDN, in order (e.g. to assert a voice clip was downloaded).
        self.cdn_requests: list[str] = []
        self.message_by_id: dict[int, Message] = {}
        self.channel_messages: dict[int, list[Message]] = {}
        self.interactions: dict[int, InteractionHandle] = {}
        self.interactions_by_token: dict[str, InteractionHandle] = {}
        #: Every op 4 VOICE_STATE_UPDATE the bot sent, as received.
        self.voice_requests: list[dict[str, Any]] = []
        #: Voice servers by region ("local" is the default for channels without a region);
        #: started by ``DiscordSandbox``.
        self.voice_servers: dict[str, VoiceServer] = {}
        #: How a move is answered (see ``tests.sandbox.gateway``).
        self.voice_moves: Literal["discord", "keep-socket", "state-only"] = "discord"
        #: Requests to routes the sandbox does not implement ("METHOD /path").
        self.unhandled_requests: list[str] = []
        #: Exceptions raised by the sandbox's own handlers (sandbox bugs).
        self.internal_errors: list[str] = []
        #: Direct-message channels the bot opened: channel id -> recipient user id.
        self.dm_channels: dict[int, int] = {}
        #: Direct messages the bot sent, as (recipient user id, content), in order.
        self.direct_messages: list[tuple[int, str]] = []
        #: Users whose privacy settings refuse direct messages from the bot (Discord's 50007).
        self.dms_closed: set[int] = set()

    # -- world ----------------------------------------------------------------------------

    def voice_server_for(self, channel: Channel) -> VoiceServer:
        return self.voice_servers[channel.rtc_region or DEFAULT_REGION]

    def new_user(self, name: str, *, bot: bool = False) -> User:
        user = User(self.new_id(), name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(
        self, name: str, *, bot_permissions: int = DEFAULT_BOT, upload_limit: int = DEFAULT_UPLOAD_LIMIT
    ) -> Guild:
        guild = Guild(self, name, bot_permissions=bot_permissions, upload_limit=upload_limit)
        self.guilds[guild.id] = guild
        self.hub.guild_added(guild)
        self.notifier.notify()
        return guild

    def dispatch_guild_event(
        self, guild: Guild, event: str, data: dict[str, Any], *, intent: int | None = None
    ) -> None:
        """Tell connected bots about a change in a guild they already know."""
        if guild.id in self.guilds:
            self.hub.dispatch(event, data, guild_id=guild.id, intent=intent)
        self.notifier.notify()

    def find_channel(self, channel_id: int) -> Channel | None:
        for guild in self.guilds.values():
            channel = guild.channels.get(channel_id)
            if channel is not None:
                return channel
        return None

    # -- CDN ------------------------------------------------------------------------------

    def store_file(
        self,
        data: bytes,
        filename: str,
        content_type: str | None,
        *,
        channel_id: int,
        ephemeral: bool = False,
        description: str | None = None,
        duration_secs: float | None = None,
        waveform: str | None = None,
    ) -> StoredFile:
        """Put bytes on the CDN and describe them as Discord's attachment object does."""
        file_id = self.new_id()
        folder = "ephemeral-attachments" if ephemeral else "attachments"
        path = f"{folder}/{channel_id}/{file_id}/{filename}"
        url_path = f"{folder}/{channel_id}/{file_id}/{quote(filename)}"
        issued = int(self.clock.now().timestamp())
        # Discord's CDN links are signed and expire; code must not assume a bare path.
        query = f"?ex={issued + 86400:x}&is={issued:x}&hm={secrets.token_hex(32)}&"
        self.cdn[path] = (data, content_type)
        return StoredFile(
            id=file_id,
            filename=filename,
            content_type=content_type,
            data=data,
            url=f"{self.base_url}/cdn/{url_path}{query}",
            proxy_url=f"{self.base_url}/media/{url_path}{query}",
            description=description,
            ephemeral=ephemeral,
            duration_secs=duration_secs,
            waveform=waveform,
        )

    # -- messages -------------------------------------------------------------------------

    def messages_in(self, channel_id: int) -> list[Message]:
        return self.channel_messages.get(channel_id, [])

    def create_message(
        self,
        channel: Channel,
        author: User,
        body: MessageBody,
        *,
        limit: int,
        path: tuple[str, ...] = (),
        allow_ephemeral: bool = False,
        extra_flags: int = 0,
        type: int = TYPE_DEFAULT,
        interaction: InteractionHandle | None = None,
    ) -> Message:
        """Validate a new message the way Discord does, store it and announce it."""
        fields = body.fields
        flags = int(fields.get("flags") or 0)
        ephemeral_bit = flags & EPHEMERAL if allow_ephemeral else 0
        flags = (flags & _SETTABLE_FLAGS) | ephemeral_bit | extra_flags
        message = Message(
            id=self.new_id(),
            channel_id=channel.id,
            guild_id=channel.guild.id,
            author=author,
            created_at=self.clock.now(),
            type=type,
            flags=flags,
        )
        self._apply(message, body, limit=limit, path=path, creating=True)
        if interaction is not None:
            message.interaction_id = interaction.id
            message.webhook_id = self.application_id
            message.application_id = self.application_id
            message.interaction_metadata = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": interaction.member.user.payload(),
                "authorizing_integration_owners": {"0": str(channel.guild.id)},
            }
        message.snapshot()
        self.message_by_id[message.id] = message
        self.channel_messages.setdefault(channel.id, []).append(message)
        if not message.ephemeral:
            self._announce("MESSAGE_CREATE", message, channel)
        self.notifier.notify()
        return message

    def edit_message(
        self, message: Message, body: MessageBody, *, limit: int, path: tuple[str, ...] = ()
    ) -> Message:
        channel = self.find_channel(message.channel_id)
        self._apply(message, body, limit=limit, path=path, creating=False)
        message.flags &= ~LOADING
        if "flags" in body.fields and body.fields["flags"] is not None:
            settable = SUPPRESS_EMBEDS
            message.flags = (message.flags & ~settable) | (int(body.fields["flags"]) & settable)
        message.edited_at = self.clock.now()
        message.snapshot()
        if channel is not None and not message.ephemeral:
            self._announce("MESSAGE_UPDATE", message, channel)
        self.notifier.notify()
        return message

    def delete_message(self, message: Message) -> None:
        message.deleted = True
        channel = self.find_channel(message.channel_id)
        if channel is not None and not message.ephemeral:
            self.hub.dispatch(
                "MESSAGE_DELETE",
                {"id": str(message.id), "channel_id": str(channel.id), "guild_id": str(channel.guild.id)},
                guild_id=channel.guild.id,
                intent=INTENT_GUILD_MESSAGES,
            )
        self.notifier.notify()

    def _announce(self, event: str, message: Message, channel: Channel) -> None:
        data = message.payload()
        member = channel.guild.members.get(message.author.id)
        if member is not None:
            data["member"] = member.payload(with_user=False)
        guild_id = channel.guild.id
        rule = self._content_rule
        self.hub.dispatch(event, data, guild_id=guild_id, intent=INTENT_GUILD_MESSAGES, for_session=rule)

    def _content_rule(self, session: Any, data: dict[str, Any]) -> dict[str, Any]:
        """Discord's Message Content rule: a session without the intent gets messages with
        empty ``content``, ``embeds``, ``attachments`` and ``components``, except the bot's
        own messages and messages that mention the bot."""
        if session.intents & INTENT_MESSAGE_CONTENT:
            return data
        author = int(data["author"]["id"])
        mentions_bot = f"<@{self.bot_user.id}>" in data.get("content", "")
        if author == self.bot_user.id or mentions_bot:
            return data
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

    # -- messages members write -------------------------------------------------------------

    def member_message(self, channel: Channel, author: User, content: str, files: list[Upload]) -> Message:
        """A message a member (or another bot) posts, announced as MESSAGE_CREATE."""
        body = MessageBody({"content": content}, {i: f for i, f in enumerate(files)})
        return self.create_message(channel, author, body, limit=channel.guild.upload_limit)

    # -- reactions --------------------------------------------------------------------------

    def add_reaction(self, message: Message, emoji: str, user: User) -> None:
        users = message.reactions.setdefault(emoji, [])
        if user.id in users:
            return
        users.append(user.id)
        message.reaction_log.append(("add", emoji, user.id))
        self._reaction_event("MESSAGE_REACTION_ADD", message, emoji, user)

    def remove_reaction(self, message: Message, emoji: str, user: User) -> None:
        users = message.reactions.get(emoji, [])
        if user.id not in users:
            return
        users.remove(user.id)
        if not users:
            del message.reactions[emoji]
        message.reaction_log.append(("remove", emoji, user.id))
        self._reaction_event("MESSAGE_REACTION_REMOVE", message, emoji, user)

    def _reaction_event(self, event: str, message: Message, emoji: str, user: User) -> None:
        data = {
            "user_id": str(user.id),
            "channel_id": str(message.channel_id),
            "message_id": str(message.id),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        self.hub.dispatch(event, data, guild_id=message.guild_id, intent=INTENT_GUILD_MESSAGE_REACTIONS)
        self.notifier.notify()

    def _apply(
        self, message: Message, body: MessageBody, *, limit: int, path: tuple[str, ...], creating: bool
    ) -> None:
        """Apply create/edit fields after checking Discord's limits; nothing changes on error."""
        fields = body.fields
        for upload in body.uploads.values():
            if len(upload.data) > limit:
                raise errors.request_entity_too_large()
        content = fields.get("content", message.content if not creating else "")
        content = "" if content is None else str(content)
        if len(content) > MAX_CONTENT:
            raise errors.invalid_form_body(
                errors.field_error(
                    [*path, "content"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
                )
            )
        embeds = fields.get("embeds") if "embeds" in fields else (None if creating else message.embeds)
        embeds = list(embeds or [])
        if len(embeds) > MAX_EMBEDS:
            raise errors.invalid_form_body(
                errors.field_error(
                    [*path, "embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."
                )
            )
        components = (
            fields.get("components") if "components" in fields else (None if creating else message.components)
        )
        components = list(components or [])
        attachments = self._attachments(message, body, creating=creating)
        if not (
            content or embeds or components or attachments or fields.get("sticker_ids") or fields.get("poll")
        ):
            raise errors.empty_message()
        message.content = content
        message.embeds = embeds
        message.components = components
        message.attachments = attachments
        if "allowed_mentions" in fields:
            message.allowed_mentions = fields["allowed_mentions"]
        if creating:
            message.tts = bool(fields.get("tts", False))

    def _attachments(self, message: Message, body: MessageBody, *, creating: bool) -> list[StoredFile]:
        """Discord's rule: a listed ``attachments`` array is the complete new set (existing
        ones by id, new uploads by their ``files[n]`` index); without it uploads are added."""
        listed = body.fields.get("attachments")
        existing = {a.id: a for a in message.attachments}

        def stored(index: int, entry: dict[str, Any]) -> StoredFile:
            upload = body.uploads[index]
            filename = entry.get("filename") or upload.filename
            part_type = upload.content_type if upload.content_type != "application/octet-stream" else None
            return self.store_file(
                upload.data,
                filename,
                guess_content_type(filename) or part_type,
                channel_id=message.channel_id,
                ephemeral=message.ephemeral,
                description=entry.get("description"),
                **(
                    {"duration_secs": float(entry["duration_secs"]), "waveform": entry["waveform"]}
                    if message.flags & IS_VOICE_MESSAGE and "duration_secs" in entry
                    else {}
                ),
            )

        if listed is None:
            kept = [] if creating else list(message.attachments)
            return kept + [stored(i, {}) for i in sorted(body.uploads)]
        result: list[StoredFile] = []
        for position, entry in enumerate(listed):
            raw_id = entry.get("id")
            key = int(raw_id) if raw_id is not None and str(raw_id).isdigit() else None
            if key is not None and key in body.uploads:
                result.append(stored(key, entry))
            elif key is not None and key in existing:
                result.append(existing[key])
            else:
                raise errors.invalid_form_body(
                    errors.field_error(
                        ["attachments", position, "id"],
                        "ATTACHMENT_NOT_FOUND",
                        f"Unknown attachment {raw_id}",
                    )
                )
        return result
