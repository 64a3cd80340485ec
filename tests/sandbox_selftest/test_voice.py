"""Voice state through the gateway: the bot's op 4 and members moving between channels."""

from __future__ import annotations

import discord

from tests.sandbox import DiscordSandbox
from tests.sandbox_selftest.conftest import World
from tests.sandbox_selftest.tiny_bot import RecordingVoice, TinyBot


async def test_bot_joins_and_leaves_through_a_voice_protocol(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    guild = bot.get_guild(world.guild.id)
    channel = bot.get_channel(world.voice.id)
    assert guild is not None and isinstance(channel, discord.VoiceChannel)

    voice = await channel.connect(cls=RecordingVoice)
    assert guild.voice_client is voice
    assert guild.me.voice is not None and guild.me.voice.channel == channel
    assert voice.server_updates[0]["guild_id"] == str(guild.id) and voice.server_updates[0]["token"]
    assert voice.state_updates[0]["session_id"] == bot.ws.session_id
    assert world.guild.voice_channel_of(sandbox.bot_user) is world.voice

    await voice.disconnect(force=False)
    assert guild.voice_client is None and guild.me.voice is None
    assert world.guild.voice_channel_of(sandbox.bot_user) is None
    assert [r["channel_id"] for r in sandbox.voice_requests] == [world.voice.id, None]


async def test_join_without_connect_permission_is_ignored(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    guild = bot.get_guild(world.guild.id)
    assert guild is not None
    await guild.change_voice_state(channel=guild.get_channel(world.locked_voice.id))  # type: ignore[arg-type]
    await sandbox.wait_for(lambda: sandbox.voice_requests, describe="the bot's op 4")
    await sandbox.sync()
    assert guild.me.voice is None
    assert world.guild.voice_channel_of(sandbox.bot_user) is None


async def test_moving_a_member_updates_member_voice(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    guild = bot.get_guild(world.guild.id)
    assert guild is not None

    await sandbox.move_member(world.member, world.voice)
    member = guild.get_member(world.member.id)
    assert member is not None and member.voice is not None
    assert member.voice.channel is not None and member.voice.channel.id == world.voice.id
    lounge = guild.get_channel(world.voice.id)
    assert isinstance(lounge, discord.VoiceChannel) and [m.id for m in lounge.members] == [world.member.id]

    await sandbox.move_member(world.member, world.locked_voice)
    assert member.voice.channel is not None and member.voice.channel.id == world.locked_voice.id

    await sandbox.move_member(world.member, None)
    assert member.voice is None and lounge.members == []


async def test_members_already_in_voice_arrive_with_guild_create(
    sandbox: DiscordSandbox, world: World
) -> None:
    await sandbox.move_member(world.other, world.voice)
    async with sandbox.run_bot(TinyBot()) as bot:
        guild = bot.get_guild(world.guild.id)
        assert guild is not None
        member = guild.get_member(world.other.id)
        assert member is not None and member.voice is not None
        assert member.voice.channel is not None and member.voice.channel.id == world.voice.id


async def test_bot_disconnected_by_a_moderator_is_told(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    guild = bot.get_guild(world.guild.id)
    channel = bot.get_channel(world.voice.id)
    assert guild is not None and isinstance(channel, discord.VoiceChannel)
    voice = await channel.connect(cls=RecordingVoice)

    await sandbox.move_member(world.guild.bot_member, None)
    assert guild.me.voice is None
    await voice.left.wait()
    assert voice.state_updates[-1]["channel_id"] is None
