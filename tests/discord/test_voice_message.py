"""``/speak output:voice_message``: a Discord voice message, checked against Discord's documented
shape (the sandbox enforces the rules, see ``tests/sandbox/voice_messages.py``), and the file
fallback where Discord refuses it."""

from __future__ import annotations

import base64
import json

import discord
import pytest
from discord.http import Route

from bot.audio import wav_info
from bot.voice_message import IS_VOICE_MESSAGE, MAX_POINTS, VoiceMessageAudio, waveform_points
from cogs.speak.voice_message import voice_message_form
from tests.discord.harness import Harness
from tests.discord.speak_support import card_with, make_wav
from tests.sandbox import DEFAULT_BOT, Permission

#: Members (the bot too) get Send Voice Messages from @everyone by default; said explicitly here.
WITH_VOICE_MESSAGES = DEFAULT_BOT | Permission.SEND_VOICE_MESSAGES
TEXT = "This one arrives as a voice message you can play inline."


async def test_a_voice_message_has_the_flag_one_ogg_attachment_its_duration_and_waveform(
    make_harness,
) -> None:
    async with make_harness(bot_permissions=WITH_VOICE_MESSAGES) as h:
        card = await card_with(await h.speak(text=TEXT, output="voice_message"), "done")

        [voice] = [m for m in h.messages() if m.flags & IS_VOICE_MESSAGE]
        [job] = h.emulator.jobs.values()
        payload = voice.payload()
        assert payload["flags"] & (1 << 13)
        assert payload["content"] == "" and payload["embeds"] == [] and payload["components"] == []
        [attachment] = payload["attachments"]
        assert attachment["filename"] == "voice-message.ogg" and attachment["content_type"] == "audio/ogg"
        assert voice.attachments[0].data.startswith(b"OggS")
        assert isinstance(attachment["duration_secs"], float)
        made = wav_info(job.media_bytes or b"").duration
        assert attachment["duration_secs"] == pytest.approx(made, abs=0.01)
        points = base64.b64decode(attachment["waveform"], validate=True)
        assert 1 <= len(points) <= 256 and max(points) > 0  # the emulator's beeps are not silence
        # The card says where it went and carries the result's buttons (a voice message has none).
        assert "posted below as a voice message" in card.content
        assert {b["label"] for b in card.buttons} == {"Re-roll", "Play in voice"}
        assert h.audio_messages() == [voice]  # no second copy as a file


async def test_without_the_permission_it_falls_back_to_a_file_with_a_reason(harness: Harness) -> None:
    h = harness
    # The channel takes no voice messages (a moderator denied Send Voice Messages to everyone).
    h.general.set_permissions(h.guild.everyone, (0, Permission.SEND_VOICE_MESSAGES))
    await h.sandbox.sync()
    card = await card_with(await h.speak(text=TEXT, output="voice_message"), "done")

    [audio] = h.audio_messages()
    assert not audio.flags & IS_VOICE_MESSAGE and audio.attachments[0].filename.endswith(".wav")
    assert "(Posted as a file: I may not send voice messages in this channel.)" in audio.content
    assert "posted below" in card.content


def test_the_waveform_has_at_most_256_points_of_at_least_100_ms() -> None:
    one_second = make_wav(1.0)
    duration, points = waveform_points(one_second)
    assert duration == pytest.approx(1.0) and len(points) == 10
    assert min(points) > 0  # a steady tone: every window has signal
    _, long_points = waveform_points(make_wav(40.0, rate=8000))
    assert len(long_points) == MAX_POINTS
    silent = b"RIFF" + (36 + 4800).to_bytes(4, "little") + b"WAVEfmt " + bytes.fromhex(
        "10000000010001002256000044ac00000200100064617461") + (4800).to_bytes(4, "little") + bytes(4800)
    assert set(waveform_points(silent)[1]) == {0}


def test_the_request_form_is_what_discord_documents() -> None:
    audio = VoiceMessageAudio(ogg=b"OggS...", duration=2.5, waveform=base64.b64encode(b"\x01\x02").decode())
    [payload_part, file_part] = voice_message_form(audio)
    payload = json.loads(payload_part["value"])
    assert payload_part["name"] == "payload_json"
    assert payload["flags"] == 1 << 13 and "content" not in payload
    assert payload["attachments"] == [
        {"id": "0", "filename": "voice-message.ogg", "duration_secs": 2.5, "waveform": "AQI="}
    ]
    assert file_part == {"name": "files[0]", "value": b"OggS...", "filename": "voice-message.ogg",
                         "content_type": "audio/ogg"}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"content": "hello"}, 50159),
        ({"attachments": []}, 50160),
        ({"duration": None}, 50161),
        ({"waveform": "not base64!"}, 50161),
        ({"waveform": base64.b64encode(bytes(257)).decode()}, 50161),
    ],
    ids=["content", "no-attachment", "no-duration", "bad-waveform", "too-many-points"],
)
async def test_the_sandbox_refuses_what_discord_refuses(make_harness, change: dict, code: int) -> None:
    async with make_harness(bot_permissions=WITH_VOICE_MESSAGES) as h:
        audio = VoiceMessageAudio(ogg=b"OggS", duration=1.0, waveform="AQI=")
        form = voice_message_form(audio)
        payload = json.loads(form[0]["value"])
        if "content" in change:
            payload["content"] = change["content"]
        if "attachments" in change:
            payload["attachments"] = change["attachments"]
        if "duration" in change:
            del payload["attachments"][0]["duration_secs"]
        if "waveform" in change:
            payload["attachments"][0]["waveform"] = change["waveform"]
        form[0]["value"] = json.dumps(payload)
        route = Route("POST", "/channels/{channel_id}/messages", channel_id=h.general.id)
        with pytest.raises(discord.HTTPException) as refused:
            await h.bot.http.request(route, form=form)
        assert refused.value.code == code
        assert h.messages() == []


async def test_a_voice_message_cannot_be_edited(make_harness) -> None:
    async with make_harness(bot_permissions=WITH_VOICE_MESSAGES) as h:
        form = voice_message_form(VoiceMessageAudio(ogg=b"OggS", duration=1.0, waveform="AQI="))
        posted = await h.bot.http.request(
            Route("POST", "/channels/{channel_id}/messages", channel_id=h.general.id), form=form
        )
        with pytest.raises(discord.HTTPException) as refused:
            await h.bot.http.request(
                Route("PATCH", "/channels/{channel_id}/messages/{message_id}", channel_id=h.general.id,
                      message_id=int(posted["id"])),
                json={"content": "changed"},
            )
        assert refused.value.code == 50162
