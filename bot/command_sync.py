"""Are the slash commands Discord has registered the ones this version of the code defines?

The bot never syncs on its own (Discord rate-limits it; see ``bot.app``), so an owner who
skipped ``chatterbox-bot sync`` after installing or upgrading would see missing or outdated
commands and no hint why. At start the bot fetches Discord's list of its global commands (one
REST call) and compares it with the tree's own payloads; any difference becomes one warning
naming ``chatterbox-bot sync``.

Pure functions on the JSON payloads (no discord import): both sides are reduced to the fields
that change what a member sees or can send — type, name, description, options (in order, with
their type, name, description, required, choices, ranges, lengths, channel types, autocomplete
and sub-options) and the default member permissions. Ids, versions, localisations Discord adds,
and the defaults Discord fills in (``required: false``, empty lists) are ignored, so a freshly
synced set compares equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.formats import plural

_OPTION_KEYS = (
    "type", "name", "description", "required", "min_value", "max_value", "min_length",
    "max_length", "autocomplete",
)


def _option(payload: Mapping[str, Any]) -> dict[str, Any]:
    shape: dict[str, Any] = {
        key: payload[key] for key in _OPTION_KEYS if payload.get(key) not in (None, False, "")
    }
    if payload.get("choices"):
        shape["choices"] = [(c["name"], c["value"]) for c in payload["choices"]]
    if payload.get("channel_types"):
        shape["channel_types"] = sorted(payload["channel_types"])
    if payload.get("options"):
        shape["options"] = [_option(o) for o in payload["options"]]
    return shape


def command_shape(payload: Mapping[str, Any]) -> dict[str, Any]:
    """What of one command's payload matters for "is it synced?"."""
    shape = _option({**payload, "type": payload.get("type", 1)})
    permissions = payload.get("default_member_permissions")
    if permissions not in (None, "", "0"):
        shape["default_member_permissions"] = str(permissions)
    return shape


@dataclass(frozen=True)
class CommandDrift:
    """The difference between the code's commands and Discord's, by name (``/speak``)."""

    missing: list[str] = field(default_factory=list)  # in the code, not registered
    changed: list[str] = field(default_factory=list)  # registered, but different
    extra: list[str] = field(default_factory=list)  # registered, no longer in the code

    def __bool__(self) -> bool:
        return bool(self.missing or self.changed or self.extra)

    def describe(self) -> str:
        parts = []
        labelled = (("missing", self.missing), ("outdated", self.changed), ("no longer used", self.extra))
        for label, names in labelled:
            if names:
                parts.append(f"{label}: {', '.join(names)}")
        return "; ".join(parts)


def _label(payload: Mapping[str, Any]) -> str:
    kind = payload.get("type", 1)
    return f"/{payload['name']}" if kind == 1 else f"{payload['name']!r} (context menu)"


def compare(code: Iterable[Mapping[str, Any]], registered: Iterable[Mapping[str, Any]]) -> CommandDrift:
    """How Discord's ``registered`` commands differ from the ``code``'s."""
    ours = {(p.get("type", 1), p["name"]): p for p in code}
    theirs = {(p.get("type", 1), p["name"]): p for p in registered}
    return CommandDrift(
        missing=sorted(_label(p) for key, p in ours.items() if key not in theirs),
        changed=sorted(
            _label(p) for key, p in ours.items()
            if key in theirs and command_shape(p) != command_shape(theirs[key])
        ),
        extra=sorted(_label(p) for key, p in theirs.items() if key not in ours),
    )


def ready_line(bot_name: str, servers: int, registered: int | None) -> str:
    commands = "? commands registered (Discord's list could not be read)" if registered is None else (
        f"{plural(registered, 'command')} registered"
    )
    return f"ready: {bot_name} in {plural(servers, 'server')}, {commands}"


def drift_warning(drift: CommandDrift) -> str:
    return (
        f"the slash commands registered with Discord differ from this version's ({drift.describe()}): "
        "run `chatterbox-bot sync` (or `make sync`) to register them (commands synced with --guild "
        "are looked for only in the first servers the bot is in)"
    )
