"""Every failure a member can see is a ``UserFacingError`` carrying the sentence to show."""

from __future__ import annotations

import pytest

from bot.audio import AudioError, TooLargeForUpload
from bot.errors import UserFacingError
from bot.gateway.errors import InsufficientBalance, InvalidTTSRequest, ServerError
from bot.quotas.errors import GuildPaused, PolicyError, QuotaExceeded
from bot.quotas.wallet import SubmissionsPaused
from bot.speech.errors import SpeechCancelled, SpeechFailed
from bot.voices.errors import ClipRejected, VoiceError


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (InvalidTTSRequest("cfg", "cfg must be between 0 and 2."), "cfg must be between 0 and 2."),
        (ServerError("HTTP 500 from gateway"), ServerError.default_user_message),
        (InsufficientBalance("402"), InsufficientBalance.default_user_message),
        (QuotaExceeded("You have used 20/20 requests today."), "You have used 20/20 requests today."),
        (GuildPaused("Paused by a moderator."), "Paused by a moderator."),
        (PolicyError("Requests per day must be from 0 to 9."), "Requests per day must be from 0 to 9."),
        (SubmissionsPaused(None, None), SubmissionsPaused(None, None).user_message),
        (SpeechCancelled(), "Cancelled."),
        (SpeechFailed("part 0: KeyError", user_message="Not made."), "Not made."),
        (AudioError("The file is empty."), "The file is empty."),
        (TooLargeForUpload("Too large.", size_bytes=2, limit_bytes=1), "Too large."),
        (VoiceError("name_long", "That name is too long."), "That name is too long."),
        (ClipRejected("not_audio", "That file is not audio."), "That file is not audio."),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_each_family_is_user_facing_and_keeps_its_sentence(error: UserFacingError, shown: str) -> None:
    assert isinstance(error, UserFacingError)
    assert error.user_message == shown


def test_the_developer_line_stays_separate_from_the_member_sentence() -> None:
    error = SpeechFailed("part 2: ValueError in _join")
    assert str(error) == "part 2: ValueError in _join"
    assert error.user_message == SpeechFailed.default_user_message
