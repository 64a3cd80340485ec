"""Text cleanup as a table: what a member types in Discord → what is spoken (and billed)."""

from __future__ import annotations

import pytest

from bot.speech.cleanup import NO_NAMES, clean_text, link_text


class ServerNames:
    """The names a server would resolve (the cog's resolver does this from the guild)."""

    def user(self, user_id: int) -> str | None:
        return {111: "Alice", 222: "Bob the Builder"}.get(user_id)

    def role(self, role_id: int) -> str | None:
        return {333: "Mods"}.get(role_id)

    def channel(self, channel_id: int) -> str | None:
        return {444: "general"}.get(channel_id)


TABLE = [
    # mentions → display names
    ("hi <@111>, meet <@!222>", "hi Alice, meet Bob the Builder"),
    ("ping <@&333> in <#444>", "ping Mods in general"),
    ("who is <@999> in <#998> with <@&997>?", "who is someone in a channel with a role?"),
    ("hey @everyone and @here", "hey everyone and here"),
    ("try </speak:123456789>", "try /speak"),
    ("see you <t:1767225600:R>", "see you January 1, 2026"),
    # custom emoji → their name
    ("nice <:party_parrot:123456789012345678>", "nice party parrot"),
    ("<a:wave:42> hello", "wave hello"),
    # URLs → "a link to host"
    ("look https://www.example.com/a/b?c=d now", "look a link to example.com now"),
    ("embedless <https://docs.python.org/3/>.", "embedless a link to docs.python.org."),
    ("read [the docs](https://discord.com/developers) first", "read the docs first"),
    ("HTTP://EXAMPLE.ORG", "a link to example.org"),
    # code → "a code block"; inline code keeps its words
    ("before ```py\nprint('x https://x.y')\n``` after", "before a code block after"),
    ("run `make test` please", "run make test please"),
    ("unclosed ```code", "unclosed a code block"),
    # markdown and spoilers go
    ("**bold** *it* _it_ __under__ ~~gone~~", "bold it it under gone"),
    ("the ||secret|| is out", "the secret is out"),
    ("# Title\n> quoted\n-# small\n- item", "Title quoted small item"),
    (">>> long quote", "long quote"),
    ("keep snake_case_words and 2*3*4", "keep snake_case_words and 2*3*4"),
    (r"escaped \*stars\*", "escaped *stars*"),
    # runs capped; numbers kept
    ("noooooooo!!!!!!", "nooo!!!"),
    ("aaaaaaa", "aaa"),
    ("1000000 dollars...", "1000000 dollars..."),
    # bracketed tags removed
    ("[laugh] that was funny [sigh]", "that was funny"),
    ("well [clears throat] okay", "well okay"),
    # whitespace
    ("  many\n\n lines\there  ", "many lines here"),
    # nothing left
    ("<:blank:1>", "blank"),
    ("[laugh] ``` x ```", "a code block"),
    ("[laugh]", ""),
    ("~~~~", ""),
]


@pytest.mark.parametrize(("typed", "spoken"), TABLE)
def test_discord_text_is_spoken_as_a_person_would_read_it(typed: str, spoken: str) -> None:
    assert clean_text(typed, ServerNames()) == spoken


def test_without_a_resolver_ids_read_as_someone() -> None:
    assert clean_text("<@111> and <#444>", NO_NAMES) == "someone and a channel"


def test_a_display_name_with_markdown_is_read_plainly() -> None:
    class Fancy(ServerNames):
        def user(self, user_id: int) -> str | None:
            return "**Star**"

    assert clean_text("hi <@1>", Fancy()) == "hi Star"


@pytest.mark.parametrize(
    ("url", "spoken"),
    [("https://example.com", "a link to example.com"), ("https://[::1", "a link"), ("http://", "a link")],
)
def test_link_text(url: str, spoken: str) -> None:
    assert link_text(url) == spoken
