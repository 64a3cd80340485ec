"""The unmodified discord.py client logs in, caches the world, and syncs commands."""

from __future__ import annotations

import discord
import discord.gateway
import discord.http
import pytest

from tests.sandbox import DiscordAPIError, DiscordSandbox
from tests.sandbox_selftest.conftest import World
from tests.sandbox_selftest.tiny_bot import TinyBot


async def test_bot_logs_in_and_caches_guilds_channels_and_roles(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    assert bot.user is not None and bot.user.id == sandbox.bot_user.id
    assert bot.application_id == sandbox.application_id
    guild = bot.get_guild(world.guild.id)
    assert guild is not None and guild.name == "Test Guild"
    assert {c.name: type(c) for c in guild.channels} == {
        "general": discord.TextChannel,
        "announcements": discord.TextChannel,
        "no-files": discord.TextChannel,
        "Lounge": discord.VoiceChannel,
        "Stage": discord.VoiceChannel,
    }
    assert {r.name for r in guild.roles} >= {"@everyone", "Moderators", sandbox.bot_user.username}
    assert guild.me.guild_permissions.attach_files
    read_only = guild.get_channel(world.read_only.id)
    assert isinstance(read_only, discord.TextChannel)
    assert not read_only.permissions_for(guild.me).send_messages
    # Without the members intent Discord sends only the bot (and members in voice).
    assert guild.get_member(world.member.id) is None
    assert sandbox.unhandled_requests == []


async def test_tree_sync_stores_commands_with_stable_ids(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    first = {c.name: c.id for c in await bot.tree.sync()}
    assert set(first) == {"ping", "render", "job", "act", "quota", "feedback", "pick"}
    assert {c["name"]: int(c["id"]) for c in sandbox.commands()} == first
    again = {c.name: c.id for c in await bot.tree.sync()}
    assert again == first

    bot.tree.copy_global_to(guild=discord.Object(world.guild.id))
    synced = await bot.tree.sync(guild=discord.Object(world.guild.id))
    assert {c.guild_id for c in synced} == {world.guild.id}
    fetched = await bot.tree.fetch_commands(guild=discord.Object(world.guild.id))
    assert sorted(c.name for c in fetched) == sorted(first)
    quota = next(c for c in fetched if c.name == "quota")
    assert [o.name for o in quota.options] == ["set-user"]


async def test_invalid_command_schema_is_refused_with_50035(
    sandbox: DiscordSandbox, world: World, bot: TinyBot
) -> None:
    bad = [
        {
            "name": "speak",
            "description": "d",
            "type": 1,
            "options": [
                {"name": "voice", "description": "d", "type": 11},
                {"name": "text", "description": "d", "type": 3, "required": True},
            ],
        }
    ]
    with pytest.raises(discord.HTTPException) as caught:
        await bot.http.bulk_upsert_global_commands(sandbox.application_id, bad)
    assert caught.value.status == 400 and caught.value.code == 50035
    assert "required" in str(caught.value)
    with pytest.raises(DiscordAPIError):
        sandbox.register_commands([{"name": "Bad Name", "description": "x"}])


async def test_wrong_token_is_a_login_failure(sandbox: DiscordSandbox) -> None:
    client = discord.Client(intents=discord.Intents.none())
    with sandbox.configure_client():
        with pytest.raises(discord.LoginFailure):
            await client.login("not-the-token")
    await client.close()


async def test_configure_client_points_discord_py_at_the_sandbox_and_restores(
    sandbox: DiscordSandbox,
) -> None:
    before = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    with sandbox.configure_client():
        assert discord.http.Route.BASE == sandbox.api_url
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == sandbox.gateway_url
    assert (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == before
