"""Messages the bot posted, with every revision, and the files they carry.

A ``Message`` is the sandbox's record, not a payload: tests read ``content``, ``embeds``,
``components``, ``attachments`` (with the uploaded bytes), ``allowed_mentions``, ``flags``
and ``history`` (one ``Revision`` per create/edit, oldest first). ``payload()`` renders the
record as Discord's message object for REST answers and gateway events.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.sandbox.models import User, iso

EPHEMERAL = 1 << 6
LOADING = 1 << 7

TYPE_DEFAULT = 0
TYPE_CHAT_INPUT_COMMAND = 20

_AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".oga": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
}


def guess_content_type(filename: str) -> str | None:
    """Discord derives an attachment's content type from the file, not the upload header
    (discord.py always uploads ``application/octet-stream``); the extension is a faithful
    enough stand-in."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix in _AUDIO_TYPES:
        return _AUDIO_TYPES[suffix]
    return mimetypes.guess_type(filename)[0]


@dataclass(frozen=True)
class StoredFile:
    """An attachment as stored on the sandbox CDN."""

    id: int
    filename: str
    content_type: str | None
    data: bytes
    url: str
    proxy_url: str
    description: str | None = None
    ephemeral: bool = False
    #: A voice message's audio: its length in seconds and its base64 waveform.
    duration_secs: float | None = None
    waveform: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.proxy_url,
        }
        if self.content_type is not None:
            data["content_type"] = self.content_type
        if self.description is not None:
            data["description"] = self.description
        if self.ephemeral:
            data["ephemeral"] = True
        if self.duration_secs is not None:
            data["duration_secs"] = self.duration_secs
        if self.waveform is not None:
            data["waveform"] = self.waveform
        return data


@dataclass(frozen=True)
class Revision:
    """The visible state of a message at one point in time."""

    content: str
    embeds: tuple[dict[str, Any], ...]
    components: tuple[dict[str, Any], ...]
    attachments: tuple[StoredFile, ...]
    flags: int
    at: datetime


def iter_components(
    components: list[dict[str, Any]] | tuple[dict[str, Any], ...],
) -> Iterator[dict[str, Any]]:
    """Every component, depth first (action rows, containers, sections' accessories)."""
    for component in components:
        yield component
        yield from iter_components(component.get("components", []))
        accessory = component.get("accessory")
        if accessory is not None:
            yield accessory


_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


@dataclass(eq=False)
class Message:
    id: int
    channel_id: int
    guild_id: int | None
    author: User
    created_at: datetime
    type: int = TYPE_DEFAULT
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[StoredFile] = field(default_factory=list)
    flags: int = 0
    allowed_mentions: dict[str, Any] | None = None
    tts: bool = False
    edited_at: datetime | None = None
    deleted: bool = False
    #: Set when the message is an interaction response or follow-up.
    interaction_id: int | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    history: list[Revision] = field(default_factory=list)
    #: Reactions now on the message: emoji -> ids of the users who reacted, in order.
    reactions: dict[str, list[int]] = field(default_factory=dict)
    #: Every reaction change, oldest first: ("add" | "remove", emoji, user id).
    reaction_log: list[tuple[str, str, int]] = field(default_factory=list)

    def reacted(self, user_id: int) -> list[str]:
        """The emoji ``user_id`` has on this message now, in the order they were added."""
        return [emoji for emoji, users in self.reactions.items() if user_id in users]

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while this is a deferred response's "thinking..." placeholder."""
        return bool(self.flags & LOADING)

    @property
    def edits(self) -> list[Revision]:
        """Revisions after the first one."""
        return self.history[1:]

    def snapshot(self) -> None:
        self.history.append(
            Revision(
                self.content,
                tuple(self.embeds),
                tuple(self.components),
                tuple(self.attachments),
                self.flags,
                self.edited_at or self.created_at,
            )
        )

    def all_components(self) -> list[dict[str, Any]]:
        return list(iter_components(self.components))

    def component(self, custom_id: str) -> dict[str, Any] | None:
        for component in iter_components(self.components):
            if component.get("custom_id") == custom_id:
                return component
        return None

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [c for c in iter_components(self.components) if c.get("type") == 2]

    def file(self, filename: str) -> StoredFile:
        for attachment in self.attachments:
            if attachment.filename == filename:
                return attachment
        raise KeyError(filename)

    def pings(self) -> dict[str, set[int] | bool]:
        """Who this message would notify, from its content and ``allowed_mentions``.

        Without ``allowed_mentions`` Discord parses everything; with it, only the listed
        kinds (``parse``) or ids (``users``/``roles``) ping.
        """
        rules = self.allowed_mentions
        parse = {"users", "roles", "everyone"} if rules is None else set(rules.get("parse", []))
        listed_users = {int(x) for x in (rules or {}).get("users", [])}
        listed_roles = {int(x) for x in (rules or {}).get("roles", [])}
        users = {int(x) for x in _USER_MENTION.findall(self.content)}
        roles = {int(x) for x in _ROLE_MENTION.findall(self.content)}
        return {
            "users": users if "users" in parse else users & listed_users,
            "roles": roles if "roles" in parse else roles & listed_roles,
            "everyone": "everyone" in parse and ("@everyone" in self.content or "@here" in self.content),
        }

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": iso(self.created_at),
            "edited_timestamp": None if self.edited_at is None else iso(self.edited_at),
            "tts": self.tts,
            "mention_everyone": bool(self.pings()["everyone"]),
            "mentions": [],
            "mention_roles": [],
            "attachments": [a.payload() for a in self.attachments],
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "type": self.type,
            "flags": self.flags,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = self.interaction_metadata
        return data

    def __repr__(self) -> str:
        return (
            f"<Message id={self.id} channel={self.channel_id} flags={self.flags} "
            f"content={self.content[:60]!r} files={[a.filename for a in self.attachments]}>"
        )
