"""Slash commands, deferral, follow-ups, edits, buttons and groups through the real client."""

from __future__ import annotations

import aiohttp
import discord
import pytest

from tests.sandbox import EPHEMERAL, LOADING, DiscordSandbox, SandboxError
from tests.sandbox_selftest.conftest import World
from tests.sandbox_selftest.tiny_bot import TinyBot

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40)


async def test_slash_delivers_typed_options_and_a_downloadable_attachment(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    clip = sandbox.attachment(WAV, "clip.wav", "audio/wav")
    handle = await sandbox.slash(
        "ping", user=world.member, channel=world.general, text="hi", level=0.7, clip=clip
    )

    seen = await bot.seen.get()
    assert seen["text"] == "hi"
    assert seen["level"] == 0.7 and isinstance(seen["level"], float)
    attachment = seen["clip"]
    assert isinstance(attachment, discord.Attachment)
    assert (attachment.filename, attachment.content_type, attachment.size) == (
        "clip.wav",
        "audio/wav",
        len(WAV),
    )
    assert seen["data"] == WAV
    assert seen["app_permissions"].attach_files
    assert len(sandbox.cdn_requests) == 1

    callback = await handle.response()
    assert callback.type == 4
    assert handle.original is not None and handle.original.content == "pong hi 0.7"
    assert not handle.deferred and not handle.ephemeral


async def test_slash_refuses_what_discords_client_would_not_send(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    with pytest.raises(SandboxError, match="outside"):
        await sandbox.slash("ping", user=world.member, text="hi", level=2.0)
    with pytest.raises(SandboxError, match="required"):
        await sandbox.slash("ping", user=world.member)
    with pytest.raises(SandboxError, match="not declared"):
        await sandbox.slash("ping", user=world.member, text="hi", volume=3)
    with pytest.raises(SandboxError, match="not registered"):
        await sandbox.slash("speak", user=world.member, text="hi")

    await sandbox.slash("ping", user=world.member, text="hi", level=2.0, validate=False)
    assert (await bot.seen.get())["level"] == 2.0


async def test_defer_then_follow_up_with_a_file_and_edit_the_original(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    handle = await sandbox.slash("render", user=world.member, channel=world.general, size=1000)

    assert (await handle.response()).type == 5
    assert handle.deferred
    followup = await handle.wait_for_followup(lambda m: bool(m.attachments))
    file = followup.file("out.wav")
    expected = bytes(range(256)) * 3 + bytes(1000 - 768)
    assert file.data == expected and file.content_type == "audio/wav"
    assert followup.content == "here it is"

    original = await handle.wait_for_original(lambda m: m.content == "done")
    assert original.id != followup.id
    assert [r.content for r in original.history] == ["", "working", "done"]
    assert original.history[0].flags & LOADING and not original.flags & LOADING

    async with aiohttp.ClientSession() as http, http.get(file.url) as response:
        assert response.status == 200 and await response.read() == expected
    assert [m.id for m in sandbox.messages(world.general)] == [original.id, followup.id]


async def test_first_follow_up_after_a_thinking_defer_becomes_the_original(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    bot.go_ahead.set()
    handle = await sandbox.slash("act", user=world.member, action="defer-then-followup")

    assert await bot.outcomes.get() == "ok"
    assert handle.original is not None and handle.original.content == "too late"
    assert [m.id for m in handle.followups] == [handle.original.id]


async def test_button_click_is_answered_per_user_and_edits_the_message(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    command = await sandbox.slash("job", user=world.member, channel=world.general)
    message = await command.wait_for_original()
    assert [b["label"] for b in message.buttons] == ["Cancel", "Refresh"]

    refused = await sandbox.click(message, "job:cancel", user=world.other)
    reply = await refused.wait_for_original()
    assert reply.content == "Only the requester can cancel." and reply.flags & EPHEMERAL
    assert message.content == "Job running."
    assert reply not in sandbox.messages(world.general)
    assert reply in sandbox.messages(world.general, include_ephemeral=True)

    accepted = await sandbox.click(message, "job:cancel", user=world.member)
    assert (await accepted.response()).type == 7
    assert accepted.original is message
    assert [r.content for r in message.history] == ["Job running.", "Job cancelled."]
    assert message.component("job:cancel") == {**message.component("job:cancel"), "disabled": True}
    with pytest.raises(SandboxError, match="disabled"):
        await sandbox.click(message, "job:cancel", user=world.member)


async def test_group_sub_command_and_default_member_permissions(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    handle = await sandbox.slash(
        "quota set-user", user=world.moderator, options={"member": world.member, "limit": 5}
    )
    answer = await handle.wait_for_original()
    assert answer.content == "alice: 5/day"
    assert answer.pings() == {"users": set(), "roles": set(), "everyone": False}

    with pytest.raises(SandboxError, match="hides /quota"):
        await sandbox.slash(["quota", "set-user"], user=world.member, member=world.other, limit=1)
    forced = await sandbox.slash(
        ["quota", "set-user"], user=world.member, member=world.other, limit=1, validate=False
    )
    refusal = await forced.wait_for_original()
    assert refusal.content == "You need Manage Server." and refusal.ephemeral


async def test_channel_messages_are_stored_with_their_files(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    bot.go_ahead.set()
    await sandbox.slash("act", user=world.member, action="post", target=world.general, size=10)
    assert await bot.outcomes.get() == "ok"

    message = await sandbox.wait_for_message(world.general, lambda m: m.content == "hello")
    assert message.author.id == sandbox.bot_user.id
    assert message.interaction_id is None
    assert message.file("a.bin").data == bytes(10)
    assert message.allowed_mentions is not None and message.allowed_mentions["parse"] == []


async def test_deferred_component_update_then_edit_original_edits_the_clicked_message(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    command = await sandbox.slash("job", user=world.member, channel=world.general)
    message = await command.wait_for_original()

    click = await sandbox.click(message, "job:refresh", user=world.member)
    assert (await click.response()).type == 6
    await click.wait_for(lambda h: h.original is not None and "refreshed" in h.original.content)
    assert click.original is message
    assert [r.content for r in message.history] == ["Job running.", "Job running (refreshed)."]


async def test_modal_is_shown_and_submitted(sandbox: DiscordSandbox, world: World, bot: TinyBot) -> None:
    command = await sandbox.slash("feedback", user=world.member)
    assert (await command.response()).type == 9
    assert command.modal is not None and command.modal["title"] == "Feedback"

    submitted = await sandbox.submit_modal(command, {"fb:text": "lovely"})
    reply = await submitted.wait_for_original()
    assert reply.content == "Thanks: lovely" and reply.ephemeral


async def test_autocomplete_returns_the_bots_choices(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    handle = await sandbox.autocomplete("pick", "voice", "t", user=world.member)
    choices = await handle.wait_for(lambda h: h.choices is not None and h.choices)
    assert choices == [{"name": "tenor", "value": "tenor"}]
