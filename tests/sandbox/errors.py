"""Discord's error answers, and the sandbox's own misuse errors.

Discord answers a refused request with an HTTP status and a JSON body
``{"code": int, "message": str, "errors"?: {...}}``; discord.py turns the status into the
exception type (403 -> ``Forbidden``, 404 -> ``NotFound``, else ``HTTPException``) and the
body's ``code`` into ``exc.code``. The factories below use Discord's real codes and texts.
"""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """A test used the sandbox wrongly (unknown command, invalid option, nobody connected...)."""


class SandboxTimeout(SandboxError, TimeoutError):
    """A wait helper's safety timeout ran out before the awaited thing happened."""


class DiscordAPIError(Exception):
    """Raised inside the REST handlers; rendered as Discord's JSON error body."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def unauthorized() -> DiscordAPIError:
    return DiscordAPIError(401, 0, "401: Unauthorized")


def not_found() -> DiscordAPIError:
    return DiscordAPIError(404, 0, "404: Not Found")


def unknown_channel() -> DiscordAPIError:
    return DiscordAPIError(404, 10003, "Unknown Channel")


def unknown_guild() -> DiscordAPIError:
    return DiscordAPIError(404, 10004, "Unknown Guild")


def unknown_member() -> DiscordAPIError:
    return DiscordAPIError(404, 10007, "Unknown Member")


def unknown_user() -> DiscordAPIError:
    return DiscordAPIError(404, 10013, "Unknown User")


def cannot_dm() -> DiscordAPIError:
    return DiscordAPIError(403, 50007, "Cannot send messages to this user")


def unknown_message() -> DiscordAPIError:
    return DiscordAPIError(404, 10008, "Unknown Message")


def unknown_webhook() -> DiscordAPIError:
    return DiscordAPIError(404, 10015, "Unknown Webhook")


def unknown_interaction() -> DiscordAPIError:
    return DiscordAPIError(404, 10062, "Unknown interaction")


def request_entity_too_large() -> DiscordAPIError:
    return DiscordAPIError(413, 40005, "Request entity too large")


def already_acknowledged() -> DiscordAPIError:
    return DiscordAPIError(400, 40060, "Interaction has already been acknowledged.")


def cannot_edit_other_users_message() -> DiscordAPIError:
    return DiscordAPIError(403, 50005, "Cannot edit a message authored by another user")


def empty_message() -> DiscordAPIError:
    return DiscordAPIError(400, 50006, "Cannot send an empty message")


def missing_permissions() -> DiscordAPIError:
    return DiscordAPIError(403, 50013, "Missing Permissions")


def invalid_webhook_token() -> DiscordAPIError:
    return DiscordAPIError(401, 50027, "Invalid Webhook Token")


def invalid_form_body(errors: dict[str, Any]) -> DiscordAPIError:
    """400 50035 with Discord's nested ``errors`` tree (``{"field": {"_errors": [...]}}``)."""
    return DiscordAPIError(400, 50035, "Invalid Form Body", errors)


def field_error(path: list[str | int], code: str, message: str) -> dict[str, Any]:
    """Build the nested ``errors`` tree for one failing field, e.g. ``["data", "content"]``."""
    node: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        node = {str(key): node}
    return node


def missing_access() -> DiscordAPIError:
    return DiscordAPIError(403, 50001, "Missing Access")


def invalid_callback_type(message: str) -> DiscordAPIError:
    return invalid_form_body(field_error(["type"], "INTERACTION_CALLBACK_TYPE_INVALID", message))
