"""Gateway behaviour beyond login: intents, live world changes, RESUME."""

from __future__ import annotations

import asyncio

import discord
import pytest

from bot.clock import ManualClock
from tests.sandbox import DiscordSandbox, Overwrite, Permission
from tests.sandbox_selftest.conftest import World
from tests.sandbox_selftest.tiny_bot import TinyBot


class MessageListener(discord.Client):
    def __init__(self, intents: discord.Intents) -> None:
        super().__init__(intents=intents)
        self.received: asyncio.Queue[discord.Message] = asyncio.Queue()

    async def on_message(self, message: discord.Message) -> None:
        await self.received.put(message)


async def test_message_create_reaches_a_client_with_the_guild_messages_intent(
    sandbox: DiscordSandbox, world: World
) -> None:
    async with sandbox.run_bot(MessageListener(discord.Intents(guilds=True, guild_messages=True))) as client:
        channel = client.get_channel(world.general.id)
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send("hello")
        async with asyncio.timeout(10):
            received = await client.received.get()
        assert (received.id, received.content) == (sent.id, "hello")


async def test_privileged_intents_must_be_enabled(clock: ManualClock) -> None:
    intents = discord.Intents(guilds=True, members=True)
    async with DiscordSandbox(clock=clock) as sandbox:
        sandbox.add_guild("g").add_member("someone")
        with pytest.raises(discord.PrivilegedIntentsRequired):
            async with sandbox.run_bot(MessageListener(intents)):
                pass
    async with DiscordSandbox(clock=clock, privileged_intents=discord.Intents(members=True).value) as sandbox:
        guild = sandbox.add_guild("g")
        someone = guild.add_member("someone")
        async with sandbox.run_bot(MessageListener(intents)) as client:
            cached = client.get_guild(guild.id)
            assert cached is not None and cached.get_member(someone.id) is not None


async def test_world_changes_after_login_reach_the_bot(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    guild = bot.get_guild(world.guild.id)
    assert guild is not None
    late = world.guild.add_text_channel("late")
    role = world.guild.add_role("late-role", permissions=Permission.MANAGE_GUILD)
    await sandbox.sync()
    channel = guild.get_channel(late.id)
    assert isinstance(channel, discord.TextChannel) and channel.permissions_for(guild.me).send_messages
    assert guild.get_role(role.id) is not None

    late.set_permissions(world.guild.bot_member, Overwrite(deny=Permission.SEND_MESSAGES))
    world.moderators.set_permissions(Permission.MANAGE_GUILD | Permission.KICK_MEMBERS)
    await sandbox.sync()
    channel = guild.get_channel(late.id)
    assert isinstance(channel, discord.TextChannel) and not channel.permissions_for(guild.me).send_messages
    moderators = guild.get_role(world.moderators.id)
    assert moderators is not None and moderators.permissions.kick_members

    added = sandbox.add_guild("Second Guild")
    await sandbox.sync()
    assert bot.get_guild(added.id) is not None


async def test_dropped_connection_is_resumed(sandbox: DiscordSandbox, world: World, bot: TinyBot) -> None:
    assert bot.ws is not None
    session_id = bot.ws.session_id
    resumed = await sandbox.drop_connection()
    assert resumed.session_id == session_id and bot.ws.session_id == session_id
    assert resumed.frames[-1]["t"] == "RESUMED"

    handle = await sandbox.slash("ping", user=world.member, text="again")
    assert (await handle.wait_for_original()).content == "pong again 0.5"
