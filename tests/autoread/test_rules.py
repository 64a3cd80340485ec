"""The reading rules: what is skipped, how text is cleaned and cut, where the author must be."""

from __future__ import annotations

import pytest

from bot.autoread.reader import NoteThrottle
from bot.autoread.rules import (
    AND_MORE,
    IncomingMessage,
    announcement,
    cut,
    skip_reason,
    spoken_text,
    voice_problem,
)
from bot.clock import ManualClock
from bot.speech.cleanup import clean_text


class Names:
    def user(self, user_id: int) -> str | None:
        return {1: "Alice"}.get(user_id)

    def role(self, role_id: int) -> str | None:
        return {2: "Mods"}.get(role_id)

    def channel(self, channel_id: int) -> str | None:
        return {3: "general"}.get(channel_id)


def message(content: str, **fields: object) -> IncomingMessage:
    return IncomingMessage(
        guild_id=1, channel_id=2, message_id=3, author_id=4, author_name="bob", content=content, **fields
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (message("hello there"), None),
        (message("hello", author_is_bot=True), "bot"),
        (message("", attachments=1), "attachment only"),
        (message("   "), "empty"),
        (message("!play never gonna"), "command"),
        (message("/roll d20"), "command"),
        (message("?help"), "command"),
        (message("...well, maybe"), None),
        (message("! wow"), None),
    ],
)
def test_skip_reason(msg: IncomingMessage, reason: str | None) -> None:
    assert skip_reason(msg) == reason


def test_cut_keeps_short_text_and_cuts_long_text_at_a_word() -> None:
    assert cut("short text", 300) == "short text"
    long = "word " * 100
    cut_text = cut(long.strip(), 50)
    assert cut_text.endswith(" " + AND_MORE)
    assert len(cut_text) <= 50
    assert cut_text == "word word word word word word word word and more"
    assert cut("x" * 80, 30) == "x" * 21 + " and more"


def test_spoken_text_cleans_then_cuts() -> None:
    text = spoken_text(
        "hi <@1> in <#3>, see https://example.com/x <:party_parrot:99> @everyone",
        names=Names(),
        cleaner=clean_text,
        max_chars=300,
    )
    assert text == "hi Alice in general, see a link to example.com party parrot everyone"
    long = spoken_text("**hello** " * 100, names=Names(), cleaner=clean_text, max_chars=40)
    assert long == "hello hello hello hello hello and more"  # markup is gone before the cut
    assert spoken_text("<@99>", names=Names(), cleaner=clean_text, max_chars=300) == "someone"
    assert spoken_text("  ", names=Names(), cleaner=clean_text, max_chars=300) == ""


def test_announcement_reads_the_display_name() -> None:
    assert announcement("bob", names=Names(), cleaner=clean_text) == "bob said"
    assert announcement("**Bo**b", names=Names(), cleaner=clean_text) == "Bob said"
    assert announcement("[laugh]", names=Names(), cleaner=clean_text) is None


@pytest.mark.parametrize(
    ("author", "bot", "configured", "join", "problem"),
    [
        (None, None, None, True, "the author is not in a voice channel"),
        (10, None, None, True, None),
        (10, None, None, False, "the bot is not in voice and does not join on its own"),
        (10, 10, None, False, None),
        (10, 11, None, True, "the author is not in the bot's voice channel"),
        (10, None, 11, True, "the author is not in the reading voice channel"),
        (11, None, 11, True, None),
    ],
)
def test_voice_problem(
    author: int | None, bot: int | None, configured: int | None, join: bool, problem: str | None
) -> None:
    assert (
        voice_problem(
            author_channel_id=author,
            bot_channel_id=bot,
            configured_channel_id=configured,
            join_on_first_speaker=join,
        )
        == problem
    )


def test_one_note_per_member_per_hour() -> None:
    clock = ManualClock()
    throttle = NoteThrottle(clock)
    assert throttle.first(1, 7, "over quota")
    assert not throttle.first(1, 7, "over quota again")
    assert throttle.first(1, 8, "over quota")  # another member
    assert throttle.first(2, 7, "over quota")  # another server
    clock.advance(3599)
    assert not throttle.first(1, 7, "still")
    assert throttle.last_reason[(1, 7)] == "still"
    clock.advance(1)
    assert throttle.first(1, 7, "an hour later")
