"""Application commands: the registry behind command sync, and option encoding for ``slash``.

The registry answers discord.py's bulk overwrite (``tree.sync()``) the way Discord does:
validates the schema (400 50035 "Invalid Form Body" with the failing field's path), keeps a
command's id when a command of the same name and type is overwritten, and echoes the
stored commands with ids. ``encode_options`` turns Python values into the interaction's
``data.options`` and ``data.resolved`` from the registered schema, enforcing what Discord's
client enforces (types, required options, ranges, lengths, choices, channel types) unless
the test asks to bypass that with ``validate=False``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tests.sandbox.errors import SandboxError, field_error, invalid_form_body
from tests.sandbox.messages import StoredFile
from tests.sandbox.models import Channel, Member, Role, User

SUB_COMMAND = 1
SUB_COMMAND_GROUP = 2
STRING = 3
INTEGER = 4
BOOLEAN = 5
USER = 6
CHANNEL = 7
ROLE = 8
MENTIONABLE = 9
NUMBER = 10
ATTACHMENT = 11

CHAT_INPUT = 1
USER_COMMAND = 2
MESSAGE_COMMAND = 3

_NAME = re.compile(r"^[-_'\w]{1,32}$", re.UNICODE)
_TYPE_NAMES = {
    STRING: "string",
    INTEGER: "integer",
    BOOLEAN: "boolean",
    USER: "user",
    CHANNEL: "channel",
    ROLE: "role",
    MENTIONABLE: "mentionable",
    NUMBER: "number",
    ATTACHMENT: "attachment",
}


def _schema_error(
    path: list[str | int], message: str, code: str = "APPLICATION_COMMAND_INVALID"
) -> Exception:
    return invalid_form_body(field_error(path, code, message))


def _validate_options(options: list[dict[str, Any]], path: list[str | int], depth: int) -> None:
    if len(options) > 25:
        raise _schema_error([*path, "options"], "Must be 25 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
    seen: set[str] = set()
    optional_seen = False
    for index, option in enumerate(options):
        here = [*path, "options", index]
        name = option.get("name", "")
        if not _NAME.match(name) or name != name.lower():
            raise _schema_error(
                [*here, "name"], "Command name is invalid", "APPLICATION_COMMAND_INVALID_NAME"
            )
        if name in seen:
            raise _schema_error([*here, "name"], "Application command option names must be unique")
        seen.add(name)
        if not 1 <= len(option.get("description", "")) <= 100:
            raise _schema_error(
                [*here, "description"], "Must be between 1 and 100 in length.", "BASE_TYPE_BAD_LENGTH"
            )
        kind = option.get("type")
        if kind in (SUB_COMMAND, SUB_COMMAND_GROUP):
            if kind == SUB_COMMAND_GROUP and depth >= 1:
                raise _schema_error([*here, "type"], "Sub-command groups cannot be nested")
            _validate_options(option.get("options", []), here, depth + 1)
            continue
        if kind not in _TYPE_NAMES:
            raise _schema_error(
                [*here, "type"], f"Value {kind!r} is not a valid enum value.", "ENUM_TYPE_COERCE"
            )
        if option.get("required", False):
            if optional_seen:
                raise _schema_error(
                    [*here, "required"], "Required options must be placed before non-required options"
                )
        else:
            optional_seen = True
        if len(option.get("choices") or []) > 25:
            raise _schema_error([*here, "choices"], "Must be 25 or fewer in length.", "BASE_TYPE_MAX_LENGTH")


def validate_command(command: dict[str, Any], index: int) -> None:
    """Raise Discord's 50035 for the schema mistakes Discord refuses at sync time."""
    kind = command.get("type", CHAT_INPUT)
    name = command.get("name", "")
    if not 1 <= len(name) <= 32 or (kind == CHAT_INPUT and (not _NAME.match(name) or name != name.lower())):
        raise _schema_error([index, "name"], "Command name is invalid", "APPLICATION_COMMAND_INVALID_NAME")
    description = command.get("description", "")
    if kind == CHAT_INPUT and not 1 <= len(description) <= 100:
        raise _schema_error(
            [index, "description"], "Must be between 1 and 100 in length.", "BASE_TYPE_BAD_LENGTH"
        )
    _validate_options(command.get("options", []), [index], 0)


class CommandRegistry:
    """Commands synced by the bot (or registered by a test), global and per guild."""

    def __init__(self, application_id: int, new_id: Callable[[], int]) -> None:
        self._application_id = application_id
        self._new_id = new_id
        self._scopes: dict[int | None, dict[tuple[int, str], dict[str, Any]]] = {}

    def overwrite(self, commands: list[dict[str, Any]], guild_id: int | None = None) -> list[dict[str, Any]]:
        """Discord's bulk overwrite: the scope's commands become exactly ``commands``."""
        if not isinstance(commands, list):
            raise invalid_form_body(
                field_error([], "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
            )
        if len(commands) > 100:
            raise invalid_form_body(
                field_error([], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
            )
        keys: set[tuple[int, str]] = set()
        for index, command in enumerate(commands):
            validate_command(command, index)
            key = (command.get("type", CHAT_INPUT), command["name"])
            if key in keys:
                raise _schema_error([index, "name"], "Application command names must be unique")
            keys.add(key)
        old = self._scopes.get(guild_id, {})
        new: dict[tuple[int, str], dict[str, Any]] = {}
        for command in commands:
            key = (command.get("type", CHAT_INPUT), command["name"])
            previous = old.get(key)
            stored = {
                "id": previous["id"] if previous else str(self._new_id()),
                "application_id": str(self._application_id),
                "version": str(self._new_id()),
                "type": key[0],
                "name": command["name"],
                "description": command.get("description", ""),
                "options": command.get("options", []),
                "default_member_permissions": command.get("default_member_permissions"),
                "dm_permission": command.get("dm_permission", True),
                "contexts": command.get("contexts"),
                "integration_types": command.get("integration_types", [0]),
                "nsfw": command.get("nsfw", False),
            }
            for extra in ("name_localizations", "description_localizations"):
                if command.get(extra):
                    stored[extra] = command[extra]
            if guild_id is not None:
                stored["guild_id"] = str(guild_id)
            new[key] = stored
        self._scopes[guild_id] = new
        return list(new.values())

    def list(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        return list(self._scopes.get(guild_id, {}).values())

    def find(self, name: str, guild_id: int | None, kind: int = CHAT_INPUT) -> dict[str, Any] | None:
        """A command of ``kind`` (chat input by default) visible in ``guild_id``: the guild's
        own first, then global."""
        scopes = (None,) if guild_id is None else (guild_id, None)
        for scope in scopes:
            command = self._scopes.get(scope, {}).get((kind, name))
            if command is not None:
                return command
        return None


def split_path(name: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"quota set-user"`` or ``["quota", "set-user"]`` -> ``["quota", "set-user"]``."""
    parts = name.split() if isinstance(name, str) else list(name)
    if not parts:
        raise SandboxError("empty command name")
    return [p.lstrip("/") for p in parts]


def leaf_schema(command: dict[str, Any], path: list[str]) -> dict[str, Any]:
    """Walk sub-command groups / sub-commands down to the invoked command's schema."""
    node = command
    for depth, part in enumerate(path[1:], start=1):
        match = next(
            (
                o
                for o in node.get("options", [])
                if o.get("name") == part and o.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP)
            ),
            None,
        )
        if match is None:
            raise SandboxError(f"/{' '.join(path[:depth])} has no sub-command {part!r}")
        node = match
    if any(o.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in node.get("options", [])):
        subs = [o["name"] for o in node["options"]]
        raise SandboxError(f"/{' '.join(path)} is a group; invoke one of its sub-commands: {subs}")
    return node


def nest_options(
    command: dict[str, Any], path: list[str], leaf_options: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Wrap the leaf's options in the SUB_COMMAND(_GROUP) layers named by ``path``."""
    options = leaf_options
    node_types: list[int] = []
    node = command
    for part in path[1:]:
        node = next(o for o in node["options"] if o["name"] == part)
        node_types.append(node["type"])
    for part, kind in zip(reversed(path[1:]), reversed(node_types), strict=True):
        options = [{"type": kind, "name": part, "options": options}]
    return options


def _infer_type(value: Any) -> int:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return NUMBER
    if isinstance(value, StoredFile):
        return ATTACHMENT
    if isinstance(value, (Member, User)):
        return USER
    if isinstance(value, Role):
        return ROLE
    if isinstance(value, Channel):
        return CHANNEL
    return STRING


class OptionEncoder:
    """Builds ``options`` and ``resolved`` for one interaction."""

    def __init__(self, invoker: Member, channel: Channel, *, validate: bool) -> None:
        self._invoker = invoker
        self._channel = channel
        self._validate = validate
        self.resolved: dict[str, dict[str, Any]] = {}

    def encode(self, schema: dict[str, Any], values: Mapping[str, Any]) -> list[dict[str, Any]]:
        declared = {o["name"]: o for o in schema.get("options", [])}
        options: list[dict[str, Any]] = []
        for name, value in values.items():
            if value is None:
                continue
            spec = declared.get(name)
            if spec is None:
                if self._validate:
                    raise SandboxError(f"option {name!r} is not declared; declared: {sorted(declared)}")
                spec = {"name": name, "type": _infer_type(value)}
            options.append({"name": name, "type": spec["type"], "value": self._value(spec, value)})
        if self._validate:
            missing = [
                o["name"] for o in declared.values() if o.get("required") and values.get(o["name"]) is None
            ]
            if missing:
                raise SandboxError(f"required option(s) missing: {missing}")
        return options

    def _fail(self, spec: dict[str, Any], problem: str) -> None:
        if self._validate:
            raise SandboxError(f"option {spec['name']!r}: {problem} (pass validate=False to send it anyway)")

    def _value(self, spec: dict[str, Any], value: Any) -> Any:
        kind = spec["type"]
        if kind == STRING:
            if not isinstance(value, str):
                self._fail(spec, f"expected a string, got {value!r}")
                return str(value)
            low, high = spec.get("min_length"), spec.get("max_length")
            if (low is not None and len(value) < low) or (high is not None and len(value) > high):
                self._fail(spec, f"length {len(value)} outside [{low}, {high}]")
            self._check_choice(spec, value)
            return value
        if kind in (INTEGER, NUMBER):
            wanted = int if kind == INTEGER else (int, float)
            if isinstance(value, bool) or not isinstance(value, wanted):
                self._fail(spec, f"expected {_TYPE_NAMES[kind]}, got {value!r}")
            else:
                low, high = spec.get("min_value"), spec.get("max_value")
                if (low is not None and value < low) or (high is not None and value > high):
                    self._fail(spec, f"{value} outside [{low}, {high}]")
            self._check_choice(spec, value)
            return value
        if kind == BOOLEAN:
            if not isinstance(value, bool):
                self._fail(spec, f"expected a boolean, got {value!r}")
            return value
        if kind == ATTACHMENT:
            if not isinstance(value, StoredFile):
                raise SandboxError(f"option {spec['name']!r}: pass sandbox.attachment(...), got {value!r}")
            self.resolved.setdefault("attachments", {})[str(value.id)] = value.payload()
            return str(value.id)
        return self._snowflake(spec, value)

    def _check_choice(self, spec: dict[str, Any], value: Any) -> None:
        choices = spec.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            self._fail(spec, f"{value!r} is not one of the choices {[c['value'] for c in choices]}")

    def _snowflake(self, spec: dict[str, Any], value: Any) -> str:
        kind = spec["type"]
        accepted: tuple[type, ...] = {
            USER: (Member, User),
            ROLE: (Role,),
            CHANNEL: (Channel,),
            MENTIONABLE: (Member, User, Role),
        }.get(kind, ())
        if not isinstance(value, accepted):
            if isinstance(value, (int, str)) and not self._validate:
                return str(value)
            raise SandboxError(
                f"option {spec['name']!r}: expected a {_TYPE_NAMES.get(kind, kind)}, got {value!r}"
            )
        if isinstance(value, Member):
            self.resolved.setdefault("users", {})[str(value.id)] = value.user.payload()
            self.resolved.setdefault("members", {})[str(value.id)] = value.payload(
                with_user=False, permissions=value.permissions_in(self._channel)
            )
        elif isinstance(value, User):
            self.resolved.setdefault("users", {})[str(value.id)] = value.payload()
        elif isinstance(value, Role):
            self.resolved.setdefault("roles", {})[str(value.id)] = value.payload()
        elif isinstance(value, Channel):
            allowed_types = spec.get("channel_types")
            if allowed_types and value.type not in allowed_types:
                self._fail(spec, f"channel type {value.type} not in {allowed_types}")
            self.resolved.setdefault("channels", {})[str(value.id)] = {
                "id": str(value.id),
                "name": value.name,
                "type": value.type,
                "permissions": str(self._invoker.permissions_in(value)),
                "parent_id": None,
                "guild_id": str(value.guild.id),
            }
        return str(value.id)
