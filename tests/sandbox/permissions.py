"""Discord permission bits and the channel permission computation.

``compute_permissions`` follows Discord's documented algorithm: the guild owner and
Administrator get everything; otherwise the base is @everyone's permissions OR the member's
roles; then the channel's overwrites apply in order @everyone, roles (all denies, then all
allows), member. Finally the implicit rules: without View Channel nothing is left, and
without Send Messages a text channel also loses embed/attach/mention-everyone/TTS.
This is an independent implementation so that the sandbox does not inherit discord.py's view
of permissions; values can be given as ints, ``Permission`` flags or ``discord.Permissions``.
"""

from __future__ import annotations

from enum import IntFlag
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.sandbox.models import Channel, Guild, Member


class Permission(IntFlag):
    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    PRIORITY_SPEAKER = 1 << 8
    STREAM = 1 << 9
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    VIEW_GUILD_INSIGHTS = 1 << 19
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    MUTE_MEMBERS = 1 << 22
    DEAFEN_MEMBERS = 1 << 23
    MOVE_MEMBERS = 1 << 24
    USE_VAD = 1 << 25
    CHANGE_NICKNAME = 1 << 26
    MANAGE_NICKNAMES = 1 << 27
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    MANAGE_GUILD_EXPRESSIONS = 1 << 30
    USE_APPLICATION_COMMANDS = 1 << 31
    REQUEST_TO_SPEAK = 1 << 32
    MANAGE_EVENTS = 1 << 33
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    USE_EXTERNAL_STICKERS = 1 << 37
    SEND_MESSAGES_IN_THREADS = 1 << 38
    USE_EMBEDDED_ACTIVITIES = 1 << 39
    MODERATE_MEMBERS = 1 << 40
    VIEW_CREATOR_MONETIZATION_ANALYTICS = 1 << 41
    USE_SOUNDBOARD = 1 << 42
    CREATE_GUILD_EXPRESSIONS = 1 << 43
    CREATE_EVENTS = 1 << 44
    USE_EXTERNAL_SOUNDS = 1 << 45
    SEND_VOICE_MESSAGES = 1 << 46
    SEND_POLLS = 1 << 49
    USE_EXTERNAL_APPS = 1 << 50


ALL_PERMISSIONS = 0
for _flag in Permission:
    ALL_PERMISSIONS |= int(_flag)

#: What a new guild's @everyone role gets from Discord (the usual member capabilities).
DEFAULT_EVERYONE = int(
    Permission.CREATE_INSTANT_INVITE
    | Permission.ADD_REACTIONS
    | Permission.STREAM
    | Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.MENTION_EVERYONE
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.CONNECT
    | Permission.SPEAK
    | Permission.USE_VAD
    | Permission.CHANGE_NICKNAME
    | Permission.USE_APPLICATION_COMMANDS
    | Permission.SEND_MESSAGES_IN_THREADS
    | Permission.SEND_VOICE_MESSAGES
    | Permission.SEND_POLLS
    | Permission.USE_EXTERNAL_APPS
)

#: What the bot's managed role gets unless the test says otherwise (a typical invite).
DEFAULT_BOT = int(
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.CONNECT
    | Permission.SPEAK
    | Permission.USE_APPLICATION_COMMANDS
)

_TEXT_NEEDS_SEND = int(
    Permission.SEND_TTS_MESSAGES
    | Permission.MENTION_EVERYONE
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
)


def to_bits(value: Any) -> int:
    """Accept an int, a ``Permission`` flag, ``discord.Permissions`` (``.value``) or None."""
    if value is None:
        return 0
    if isinstance(value, int):
        return int(value)
    bits = getattr(value, "value", None)
    if isinstance(bits, int):
        return bits
    raise TypeError(f"cannot read permissions from {value!r}")


def base_permissions(guild: Guild, member: Member) -> int:
    """Guild-level permissions of ``member`` (no channel overwrites)."""
    if member.user.id == guild.owner_id:
        return ALL_PERMISSIONS
    bits = guild.everyone.permissions
    for role in member.roles:
        bits |= role.permissions
    if bits & Permission.ADMINISTRATOR:
        return ALL_PERMISSIONS
    return bits


def compute_permissions(guild: Guild, member: Member, channel: Channel) -> int:
    """Permissions of ``member`` in ``channel``, as Discord computes them."""
    bits = base_permissions(guild, member)
    if bits == ALL_PERMISSIONS:
        return bits
    overwrites = channel.overwrites
    everyone = overwrites.get(guild.everyone.id)
    if everyone is not None:
        bits = (bits & ~everyone.deny) | everyone.allow
    allow = deny = 0
    for role in member.roles:
        overwrite = overwrites.get(role.id)
        if overwrite is not None:
            allow |= overwrite.allow
            deny |= overwrite.deny
    bits = (bits & ~deny) | allow
    own = overwrites.get(member.user.id)
    if own is not None:
        bits = (bits & ~own.deny) | own.allow
    if not bits & Permission.VIEW_CHANNEL:
        return 0
    if not bits & Permission.SEND_MESSAGES:
        bits &= ~_TEXT_NEEDS_SEND
    return bits


def has(bits: int, needed: int) -> bool:
    return bits & needed == needed
