"""The /speak wording and option checks, as pure functions (no Discord needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.speech import reference
from cogs.speak import card as _card
from cogs.speak import checks as _checks


def test_a_signed_discord_link_expires_at_its_ex_time() -> None:
    from datetime import UTC, datetime

    url = "https://cdn.discordapp.com/attachments/1/2/clip.wav?ex=65f00000&is=65e00000&hm=ab"
    expiry = datetime.fromtimestamp(0x65F00000, UTC)
    assert not _checks.link_expired(url, expiry.replace(year=2024, month=1))
    assert _checks.link_expired(url, expiry)
    assert not _checks.link_expired("https://example.com/clip.wav", expiry)
    assert not _checks.link_expired("https://example.com/clip.wav?ex=zz", expiry)


def test_status_lines_read_as_the_card_promises() -> None:
    assert _card.status_quota_ok(2) == "quota ok: 2 parts"  # public: no cost on the card
    assert _card.status_quota_ok(1) == "quota ok"
    assert _card.status_waiting(3) == "queued, position 3"
    assert _card.status_submitted(1, 1) == "queued"
    assert _card.status_submitted(1, 3) == "queued (1/3 parts sent)"
    assert _card.status_processing(4.0) == "processing… 4 s"
    assert _card.status_processing(12.4, 1, 3) == "processing… 12 s (1/3 parts ready)"
    assert _card.status_done(75, where="posted below") == "done: 1 min 15 s of audio, posted below"
    assert _card.status_from_cache() == "from cache"  # public: no price, even $0
    assert _card.status_done(3, where="posted below", cached=True) == (
        "done: 3 s of audio (from cache), posted below"
    )
    assert _card.status_failed("0123456789abcdef") == "failed (error id `01234567`)"
    assert _card.status_cancelled(True) == "cancelled (your quota was refunded)"
    assert "quota was used" in _card.status_cancelled(False)


def test_the_card_quotes_text_without_letting_it_reshape_the_message() -> None:
    card = _card.Card(
        requester="<@1>", text="**bold** > quote\n# heading " + "x" * 300, output="both",
        exaggeration=0.5, temperature=0.8, cfg=0.5, voice_name="me.wav",
    )
    card.status = _card.status_waiting(2)
    card.voice = "queued (2nd)"
    lines = card.render().splitlines()
    assert lines[0] == "🗣️ **/speak** by <@1> · output: both"
    assert lines[1].startswith("> \\*\\*bold\\*\\* \\> quote \\# heading xxx") and lines[1].endswith("…")
    assert lines[2] == "exaggeration 0.5 · temperature 0.8 · cfg 0.5 · voice: me.wav"
    assert lines[3:] == ["**Status:** queued, position 2", "**Voice:** queued (2nd)"]


def test_the_audio_message_names_requester_duration_and_settings() -> None:
    text = _card.audio_message(
        requester="<@7>", text="Hi there", duration=3.24, exaggeration=1, temperature=0.1, cfg=2,
        voice_name=None, note="Compressed to Ogg Opus at 64 kbps to fit the 8 MB upload limit.",
    )
    assert text.splitlines() == [
        "🔊 <@7> asked for 3.2 s of speech:",
        "> Hi there",
        "exaggeration 1 · temperature 0.1 · cfg 2 · default voice",
        "Compressed to Ogg Opus at 64 kbps to fit the 8 MB upload limit.",
    ]


def test_quota_refusal_adds_the_reset_time_as_discord_timestamps() -> None:
    resets = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    stamp = int(resets.timestamp())
    assert _card.quota_refusal("You have used 5/5 requests today; resets in 3 h.", resets) == (
        f"You have used 5/5 requests today; resets in 3 h (at <t:{stamp}:t> your time)."
    )
    assert _card.quota_refusal("Too long for one request.", None) == "Too long for one request."
    slow = "Slow down: you can speak again in 8 s."
    assert _card.quota_refusal(slow, resets, "cooldown") == slow  # not a quota reset


def test_cost_and_failure_details_are_private_texts_said_once() -> None:
    assert _card.cost_note(2, Decimal("0.02")) == (
        "This /speak uses 2 requests of your quota ($0.02); it is given back if the TTS service "
        "does not charge for it."
    )
    small = _card.cost_note(1, Decimal("0.005"))
    assert small.startswith("This /speak uses 1 request of your quota ($0.005);")
    refunded = _card.failure_message("The TTS service had a system error.", True, "abcdef0123")
    assert refunded == (
        "Your /speak failed: The TTS service had a system error. Nothing was charged (your quota "
        "was given back), so you can try again. (error id `abcdef01`)"
    )
    charged = _card.failure_message("The TTS service took too long with this request.", False, "abcdef0123")
    assert "counts against your quota" in charged and "try again" not in charged
    assert _card.out_of_credit_refusal("Paused.", True) == "Paused. This server's moderators have been told."
    assert _card.out_of_credit_refusal("Paused.", False) == "Paused."


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ((0.0, 0.1, 0.0), None),
        ((1.0, 1.0, 2.0), None),
        ((-0.1, 0.5, 0.5), "`exaggeration` must be between 0 and 1 (got -0.1)."),
        ((0.5, 0.0, 0.5), "`temperature` must be between 0.1 and 1 (got 0.0)."),
        ((0.5, 0.5, float("nan")), "`cfg` must be between 0 and 2 (got nan)."),
    ],
)
def test_parameter_ranges(values: tuple[float, float, float], problem: str | None) -> None:
    assert _checks.check_params(*values) == problem


@pytest.mark.parametrize(
    ("content_type", "filename", "audio"),
    [
        ("audio/wav", "a.bin", True),
        ("audio/mpeg; charset=binary", "a", True),
        ("text/plain", "sneaky.wav", False),  # Discord's type wins over the name
        (None, "clip.OGG", True),
        (None, "clip.txt", False),
    ],
)
def test_what_counts_as_audio(content_type: str | None, filename: str, audio: bool) -> None:
    assert reference.is_audio(content_type, filename) is audio


def test_voice_file_and_permission_messages() -> None:
    assert reference.metadata_problem("audio/wav", "a.wav", 10, 100) is None
    assert reference.metadata_problem("audio/wav", "a.wav", 3 * 1024 * 1024 + 1, 3 * 1024 * 1024) == (
        "The voice clip is 3.1 MB; the limit is 3 MB."
    )
    assert "must be an audio file" in (reference.metadata_problem("image/png", "a.png", 10, 100) or "")
    assert reference.duration_problem(31.0, 30.0) is not None
    assert reference.duration_problem(30.0, 30.0) is None
    assert _checks.missing_channel_permissions(view=True, send=True, attach=True) is None
    message = _checks.missing_channel_permissions(view=True, send=False, attach=False)
    assert message is not None and "Send Messages and Attach Files permissions" in message
