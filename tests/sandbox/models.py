"""The sandbox's world: users, guilds, roles, members, channels, voice states.

Plain objects with builder methods (``guild.add_text_channel(...)``) and ``payload()``
methods that render them exactly as Discord's API does (ids as strings, ISO timestamps,
permissions as decimal strings). Builders used after the bot connected also tell the bot,
through the gateway, as Discord would (``CHANNEL_CREATE``, ``GUILD_MEMBER_ADD``...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tests.sandbox.permissions import (
    DEFAULT_EVERYONE,
    Permission,
    base_permissions,
    compute_permissions,
    to_bits,
)

if TYPE_CHECKING:
    from tests.sandbox.state import SandboxState

TEXT = 0
VOICE = 2

INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_VOICE_STATES = 1 << 7
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
INTENT_MESSAGE_CONTENT = 1 << 15


def iso(moment: datetime) -> str:
    return moment.isoformat()


@dataclass(eq=False)
class User:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass(eq=False)
class Role:
    guild: Guild
    id: int
    name: str
    permissions: int
    position: int
    managed: bool = False
    bot_id: int | None = None
    mentionable: bool = False

    @property
    def mention(self) -> str:
        return "@everyone" if self.id == self.guild.id else f"<@&{self.id}>"

    def set_permissions(self, permissions: Any) -> None:
        """Change the role's permissions (``GUILD_ROLE_UPDATE`` to a connected bot)."""
        self.permissions = to_bits(permissions)
        self.guild.state.dispatch_guild_event(
            self.guild, "GUILD_ROLE_UPDATE", {"guild_id": str(self.guild.id), "role": self.payload()}
        )

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass(frozen=True)
class Overwrite:
    """A channel permission overwrite: bits explicitly allowed and denied."""

    allow: int = 0
    deny: int = 0

    @classmethod
    def of(cls, value: Any) -> Overwrite:
        """Accept an ``Overwrite``, ``discord.PermissionOverwrite`` or an ``(allow, deny)`` pair."""
        if isinstance(value, Overwrite):
            return value
        if hasattr(value, "pair"):
            allow, deny = value.pair()
            return cls(to_bits(allow), to_bits(deny))
        allow, deny = value
        return cls(to_bits(allow), to_bits(deny))


@dataclass(eq=False)
class Member:
    guild: Guild
    user: User
    roles: list[Role]
    joined_at: datetime
    nick: str | None = None

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def name(self) -> str:
        return self.user.username

    @property
    def mention(self) -> str:
        return self.user.mention

    @property
    def guild_permissions(self) -> int:
        return base_permissions(self.guild, self)

    def permissions_in(self, channel: Channel) -> int:
        return compute_permissions(self.guild, self, channel)

    @property
    def voice(self) -> VoiceState | None:
        return self.guild.voice_states.get(self.id)

    def payload(self, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "roles": [str(role.id) for role in self.roles],
            "joined_at": iso(self.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass(eq=False)
class Channel:
    guild: Guild
    id: int
    name: str
    type: int
    position: int
    overwrites: dict[int, Overwrite] = field(default_factory=dict)
    overwrite_types: dict[int, int] = field(default_factory=dict)
    topic: str | None = None
    user_limit: int = 0
    bitrate: int = 64000
    #: Voice region (None: automatic); ``DiscordSandbox.set_rtc_region`` changes it.
    rtc_region: str | None = None

    @property
    def is_voice(self) -> bool:
        return self.type == VOICE

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    @property
    def voice_members(self) -> list[Member]:
        """Members whose voice state is in this channel."""
        return [
            self.guild.members[state.user_id]
            for state in self.guild.voice_states.values()
            if state.channel_id == self.id and state.user_id in self.guild.members
        ]

    def set_permissions(self, target: Role | Member | User, overwrite: Any) -> None:
        """Set (or with ``None`` remove) one overwrite; a connected bot gets ``CHANNEL_UPDATE``."""
        if overwrite is None:
            self.overwrites.pop(target.id, None)
            self.overwrite_types.pop(target.id, None)
        else:
            self.overwrites[target.id] = Overwrite.of(overwrite)
            self.overwrite_types[target.id] = 0 if isinstance(target, Role) else 1
        self.guild.state.dispatch_guild_event(self.guild, "CHANNEL_UPDATE", self.payload())

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild.id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [
                {
                    "id": str(target),
                    "type": self.overwrite_types[target],
                    "allow": str(ow.allow),
                    "deny": str(ow.deny),
                }
                for target, ow in self.overwrites.items()
            ],
            "parent_id": None,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }
        if self.type == TEXT:
            data["topic"] = self.topic
        else:
            data.update(
                bitrate=self.bitrate,
                user_limit=self.user_limit,
                rtc_region=self.rtc_region,
                video_quality_mode=1,
            )
        return data


@dataclass(eq=False)
class VoiceState:
    guild_id: int
    channel_id: int
    user_id: int
    session_id: str
    self_mute: bool = False
    self_deaf: bool = False

    def payload(self, member: Member | None, *, channel_id: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "guild_id": str(self.guild_id),
            "channel_id": None if channel_id is None else str(channel_id),
            "user_id": str(self.user_id),
            "session_id": self.session_id,
            "deaf": False,
            "mute": False,
            "self_deaf": self.self_deaf,
            "self_mute": self.self_mute,
            "self_video": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
        }
        if member is not None:
            data["member"] = member.payload()
        return data


class Guild:
    """A guild with its owner, @everyone, the bot's managed role and the bot's member."""

    def __init__(
        self,
        state: SandboxState,
        name: str,
        *,
        bot_permissions: int,
        upload_limit: int,
    ) -> None:
        self.state = state
        self.id = state.new_id()
        self.name = name
        self.upload_limit = upload_limit
        self.roles: dict[int, Role] = {}
        self.channels: dict[int, Channel] = {}
        self.members: dict[int, Member] = {}
        self.voice_states: dict[int, VoiceState] = {}
        self.joined_at = state.clock.now()
        # @everyone's id is the guild's id, as on Discord.
        self.everyone = Role(self, self.id, "@everyone", DEFAULT_EVERYONE, 0)
        self.roles[self.id] = self.everyone
        owner = self.add_member("owner")
        self.owner_id = owner.id
        self.bot_role = self._new_role(
            state.bot_user.username, bot_permissions, managed=True, bot_id=state.bot_user.id
        )
        self.bot_member = self._new_member(state.bot_user, [self.bot_role])

    # -- builders -------------------------------------------------------------------------

    def add_role(self, name: str, permissions: Any = 0, *, mentionable: bool = False) -> Role:
        role = self._new_role(name, to_bits(permissions), mentionable=mentionable)
        self.state.dispatch_guild_event(
            self, "GUILD_ROLE_CREATE", {"guild_id": str(self.id), "role": role.payload()}
        )
        return role

    def add_text_channel(
        self,
        name: str,
        overwrites: Mapping[Role | Member | User, Any] | None = None,
        *,
        topic: str | None = None,
    ) -> Channel:
        return self._add_channel(name, TEXT, overwrites, topic=topic)

    def add_voice_channel(
        self,
        name: str,
        overwrites: Mapping[Role | Member | User, Any] | None = None,
        *,
        user_limit: int = 0,
    ) -> Channel:
        return self._add_channel(name, VOICE, overwrites, user_limit=user_limit)

    def add_member(
        self,
        name: str,
        roles: Iterable[Role] = (),
        permissions: Any = None,
        *,
        nick: str | None = None,
        bot: bool = False,
    ) -> Member:
        """A new user joins. ``permissions`` gives the member a personal role with those bits."""
        user = self.state.new_user(name, bot=bot)
        role_list = list(roles)
        if permissions is not None:
            role_list.append(self._new_role(f"{name} (personal)", to_bits(permissions)))
        member = self._new_member(user, role_list, nick=nick)
        self.state.dispatch_guild_event(
            self,
            "GUILD_MEMBER_ADD",
            {**member.payload(), "guild_id": str(self.id)},
            intent=INTENT_GUILD_MEMBERS,
        )
        return member

    def set_roles(self, member: Member, roles: Iterable[Role]) -> None:
        """Replace a member's roles (``GUILD_MEMBER_UPDATE`` to a connected bot)."""
        member.roles = [role for role in roles if role.id != self.id]
        self.state.dispatch_guild_event(
            self,
            "GUILD_MEMBER_UPDATE",
            {**member.payload(), "guild_id": str(self.id)},
            intent=INTENT_GUILD_MEMBERS,
        )

    # -- lookups --------------------------------------------------------------------------

    def member(self, who: Member | User | int) -> Member:
        user_id = who if isinstance(who, int) else who.id
        return self.members[user_id]

    def channel(self, name: str) -> Channel:
        for channel in self.channels.values():
            if channel.name == name:
                return channel
        raise KeyError(name)

    @property
    def text_channels(self) -> list[Channel]:
        return [c for c in self.channels.values() if c.type == TEXT]

    @property
    def voice_channels(self) -> list[Channel]:
        return [c for c in self.channels.values() if c.type == VOICE]

    def voice_channel_of(self, who: Member | User | int) -> Channel | None:
        user_id = who if isinstance(who, int) else who.id
        state = self.voice_states.get(user_id)
        return None if state is None else self.channels.get(state.channel_id)

    # -- payloads -------------------------------------------------------------------------

    def payload(self, intents: int | None = None) -> dict[str, Any]:
        """The full ``GUILD_CREATE`` body. Without the members intent Discord sends only the
        bot itself and members in voice, so does the sandbox."""
        all_members = intents is None or bool(intents & INTENT_GUILD_MEMBERS)
        members = [
            m
            for m in self.members.values()
            if all_members or m.user.id == self.state.bot_user.id or m.user.id in self.voice_states
        ]
        send_voice = intents is None or bool(intents & INTENT_GUILD_VOICE_STATES)
        return {
            **self.partial_payload(),
            "unavailable": False,
            "large": False,
            "member_count": len(self.members),
            "joined_at": iso(self.joined_at),
            "roles": [role.payload() for role in self.roles.values()],
            "channels": [channel.payload() for channel in self.channels.values()],
            "members": [m.payload() for m in members],
            "voice_states": [
                {k: v for k, v in vs.payload(None, channel_id=vs.channel_id).items() if k != "guild_id"}
                for vs in self.voice_states.values()
            ]
            if send_voice
            else [],
            "presences": [],
            "threads": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "emojis": [],
            "stickers": [],
        }

    def partial_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "max_members": 500000,
            "max_video_channel_users": 25,
        }

    # -- internals ------------------------------------------------------------------------

    def _new_role(
        self,
        name: str,
        permissions: int,
        *,
        managed: bool = False,
        bot_id: int | None = None,
        mentionable: bool = False,
    ) -> Role:
        role = Role(
            self, self.state.new_id(), name, permissions, len(self.roles), managed, bot_id, mentionable
        )
        self.roles[role.id] = role
        return role

    def _new_member(self, user: User, roles: list[Role], *, nick: str | None = None) -> Member:
        member = Member(self, user, [r for r in roles if r.id != self.id], self.state.clock.now(), nick)
        self.members[user.id] = member
        return member

    def _add_channel(
        self,
        name: str,
        kind: int,
        overwrites: Mapping[Role | Member | User, Any] | None,
        **extra: Any,
    ) -> Channel:
        channel = Channel(self, self.state.new_id(), name, kind, len(self.channels), **extra)
        for target, value in (overwrites or {}).items():
            channel.overwrites[target.id] = Overwrite.of(value)
            channel.overwrite_types[target.id] = 0 if isinstance(target, Role) else 1
        self.channels[channel.id] = channel
        self.state.dispatch_guild_event(self, "CHANNEL_CREATE", channel.payload())
        return channel


__all__ = [
    "TEXT",
    "VOICE",
    "Channel",
    "Guild",
    "Member",
    "Overwrite",
    "Permission",
    "Role",
    "User",
    "VoiceState",
]
