"""Discord's rules for modals: what a bot may send (callback type 9) and what a user can submit.

From Discord's documentation ("Interaction Response Object: Modal", "Component Reference"):

- the modal: ``custom_id`` 1-100 characters, ``title`` 1-45, 1-5 top-level components;
- a top-level component is an Action Row (type 1) holding one Text Input (the older form,
  whose ``label`` is then required, at most 45), a Label (type 18: ``label`` 1-45,
  ``description`` at most 100, one Text Input or String Select inside), or a Text Display
  (type 10);
- a Text Input (type 4): ``custom_id`` 1-100, ``style`` 1 or 2, ``min_length`` 0-4000,
  ``max_length`` 1-4000 (not below ``min_length``), ``placeholder`` at most 100, ``value``
  at most ``max_length``;
- a String Select (type 3): 1-25 options (label and value at most 100 each, values unique),
  ``min_values`` 0-25, ``max_values`` 1-25 and not above the number of options.

A refusal is the 400 / 50035 "Invalid Form Body" Discord answers. On the user's side,
Discord's client lets no one submit a text longer than ``max_length`` or shorter than
``min_length``, an empty required field, or values the select does not offer:
``submission_problem`` names the one a test tried (``submit_modal(validate=False)`` sends it
anyway, like a hand-made client would).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.sandbox import errors
from tests.sandbox.errors import DiscordAPIError

ACTION_ROW, STRING_SELECT, TEXT_INPUT, TEXT_DISPLAY, LABEL = 1, 3, 4, 10, 18


def _bad(path: list[str | int], message: str) -> DiscordAPIError:
    return errors.invalid_form_body(errors.field_error(["data", *path], "BASE_TYPE_BAD_LENGTH", message))


def _length(value: Any, low: int, high: int, path: list[str | int]) -> None:
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise _bad(path, f"Must be between {low} and {high} in length.")


def check_modal(data: Mapping[str, Any]) -> None:
    """Raise Discord's 50035 error when ``data`` (a type 9 callback's ``data``) breaks a rule."""
    _length(data.get("custom_id"), 1, 100, ["custom_id"])
    _length(data.get("title"), 1, 45, ["title"])
    components = data.get("components") or []
    if not 1 <= len(components) <= 5:
        raise _bad(["components"], "Must be between 1 and 5 in length.")
    for n, component in enumerate(components):
        path: list[str | int] = ["components", n]
        kind = component.get("type")
        if kind == ACTION_ROW:
            children = component.get("components") or []
            if len(children) != 1 or children[0].get("type") != TEXT_INPUT:
                raise _bad(path, "A modal's action row holds exactly one text input.")
            _length(children[0].get("label"), 1, 45, [*path, "components", 0, "label"])
            _check_text_input(children[0], [*path, "components", 0])
        elif kind == LABEL:
            _length(component.get("label"), 1, 45, [*path, "label"])
            if component.get("description") is not None:
                _length(component["description"], 0, 100, [*path, "description"])
            inner = component.get("component") or {}
            if inner.get("type") == TEXT_INPUT:
                _check_text_input(inner, [*path, "component"])
            elif inner.get("type") == STRING_SELECT:
                _check_select(inner, [*path, "component"])
            else:
                raise _bad([*path, "component"], "A label holds a text input or a select menu.")
        elif kind != TEXT_DISPLAY:
            raise _bad([*path, "type"], f"Component type {kind!r} is not allowed in a modal.")


def _check_text_input(component: Mapping[str, Any], path: list[str | int]) -> None:
    _length(component.get("custom_id"), 1, 100, [*path, "custom_id"])
    if component.get("style") not in (1, 2):
        raise _bad([*path, "style"], "Text input style must be 1 (short) or 2 (paragraph).")
    low = component.get("min_length", 0)
    high = component.get("max_length", 4000)
    if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= 4000 and 1 <= high <= 4000
            and low <= high):
        raise _bad([*path, "max_length"], "min_length must be 0-4000, max_length 1-4000 and not smaller.")
    if component.get("placeholder") is not None:
        _length(component["placeholder"], 0, 100, [*path, "placeholder"])
    if component.get("value") is not None:
        _length(component["value"], 0, high, [*path, "value"])


def _check_select(component: Mapping[str, Any], path: list[str | int]) -> None:
    _length(component.get("custom_id"), 1, 100, [*path, "custom_id"])
    options = component.get("options") or []
    if not 1 <= len(options) <= 25:
        raise _bad([*path, "options"], "Must be between 1 and 25 in length.")
    values = [o.get("value") for o in options]
    for n, option in enumerate(options):
        _length(option.get("label"), 1, 100, [*path, "options", n, "label"])
        _length(option.get("value"), 1, 100, [*path, "options", n, "value"])
    if len(set(values)) != len(values):
        raise _bad([*path, "options"], "Option values must be unique.")
    low, high = component.get("min_values", 1), component.get("max_values", 1)
    if not (0 <= low <= 25 and 1 <= high <= min(25, len(options)) and low <= high):
        raise _bad([*path, "max_values"], "min_values/max_values out of range for these options.")


def submission_problem(component: Mapping[str, Any], value: str | list[str] | None) -> str | None:
    """Why Discord's client would not let the user submit ``value`` in ``component``; None if it would."""
    custom_id = component.get("custom_id")
    if component.get("type") == TEXT_INPUT:
        text = value if isinstance(value, str) else ""
        required = component.get("required", True)
        if not text:
            return f"modal text input {custom_id!r} is required" if required else None
        low, high = component.get("min_length", 0), component.get("max_length", 4000)
        if not low <= len(text) <= high:
            return f"modal text input {custom_id!r} takes {low}-{high} characters, not {len(text)}"
        return None
    chosen = [value] if isinstance(value, str) else list(value or [])
    offered = {o.get("value") for o in component.get("options") or []}
    if component.get("options") is not None and not set(chosen) <= offered:
        return f"select {custom_id!r} does not offer {sorted(set(chosen) - offered)}"
    low = component.get("min_values", 1) if component.get("required", True) else 0
    high = component.get("max_values", 1)
    if not low <= len(chosen) <= high:
        return f"select {custom_id!r} takes {low}-{high} values, not {len(chosen)}"
    return None
