"""The sandbox's modal rules (``tests.sandbox.modals``): what Discord refuses from a bot, and
what Discord's client refuses to submit."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.errors import DiscordAPIError
from tests.sandbox.modals import check_modal, submission_problem

TEXT = {"type": 4, "custom_id": "why", "style": 2, "max_length": 10, "required": False}
SELECT = {"type": 3, "custom_id": "kind", "min_values": 0, "max_values": 1, "required": False,
          "options": [{"label": "A", "value": "a"}, {"label": "B", "value": "b"}]}


def modal(**changes: Any) -> dict[str, Any]:
    return {"custom_id": "m", "title": "Report",
            "components": [{"type": 18, "label": "Why?", "component": TEXT},
                           {"type": 18, "label": "Kind", "component": SELECT}], **changes}


def test_a_well_formed_modal_passes() -> None:
    check_modal(modal())
    check_modal(modal(components=[{"type": 1, "components": [{**TEXT, "label": "Why?"}]}]))


@pytest.mark.parametrize("changes", [
    {"title": "x" * 46},
    {"custom_id": ""},
    {"components": []},
    {"components": [{"type": 18, "label": "Why?", "component": TEXT}] * 6},
    {"components": [{"type": 18, "label": "x" * 46, "component": TEXT}]},
    {"components": [{"type": 18, "label": "Why?", "component": {**TEXT, "max_length": 4001}}]},
    {"components": [{"type": 18, "label": "Why?", "component": {**SELECT, "max_values": 3}}]},
    {"components": [{"type": 1, "components": [TEXT]}]},  # an action row's text input needs a label
    {"components": [{"type": 2, "custom_id": "b"}]},  # no buttons in a modal
])
def test_discord_refuses_a_modal_that_breaks_a_rule(changes: dict[str, Any]) -> None:
    with pytest.raises(DiscordAPIError) as refused:
        check_modal(modal(**changes))
    assert (refused.value.status, refused.value.code) == (400, 50035)


def test_the_client_refuses_what_the_inputs_do_not_allow() -> None:
    assert submission_problem(TEXT, "x" * 10) is None and submission_problem(TEXT, None) is None
    assert "takes 0-10 characters, not 11" in (submission_problem(TEXT, "x" * 11) or "")
    assert "is required" in (submission_problem({**TEXT, "required": True}, "") or "")
    assert submission_problem(SELECT, []) is None and submission_problem(SELECT, ["b"]) is None
    assert "does not offer ['z']" in (submission_problem(SELECT, ["z"]) or "")
    assert "takes 0-1 values, not 2" in (submission_problem(SELECT, ["a", "b"]) or "")
