"""Fixtures: a sandbox on a ManualClock, a small world, and the tiny bot logged into it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import discord
import pytest

from bot.clock import ManualClock
from tests.sandbox import Channel, DiscordSandbox, Guild, Member, Overwrite, Permission, Role
from tests.sandbox_selftest.tiny_bot import TinyBot


@dataclass
class World:
    guild: Guild
    general: Channel
    read_only: Channel
    no_files: Channel
    voice: Channel
    locked_voice: Channel
    moderators: Role
    member: Member
    other: Member
    moderator: Member


@pytest.fixture
async def sandbox(clock: ManualClock) -> AsyncIterator[DiscordSandbox]:
    async with DiscordSandbox(clock=clock) as sandbox:
        yield sandbox


@pytest.fixture
def world(sandbox: DiscordSandbox) -> World:
    guild = sandbox.add_guild("Test Guild")
    moderators = guild.add_role("Moderators", permissions=Permission.MANAGE_GUILD)
    bot = guild.bot_member
    return World(
        guild=guild,
        general=guild.add_text_channel("general"),
        read_only=guild.add_text_channel(
            "announcements", overwrites={bot: Overwrite(deny=Permission.SEND_MESSAGES)}
        ),
        no_files=guild.add_text_channel(
            "no-files", overwrites={guild.bot_role: Overwrite(deny=Permission.ATTACH_FILES)}
        ),
        voice=guild.add_voice_channel("Lounge"),
        locked_voice=guild.add_voice_channel(
            "Stage", overwrites={guild.everyone: discord.PermissionOverwrite(connect=False)}
        ),
        moderators=moderators,
        member=guild.add_member("alice"),
        other=guild.add_member("bob"),
        moderator=guild.add_member("mo", roles=[moderators]),
    )


@pytest.fixture
async def bot(sandbox: DiscordSandbox, world: World) -> AsyncIterator[TinyBot]:
    """The tiny bot, logged in, with its commands synced globally through tree.sync()."""
    async with sandbox.run_bot(TinyBot()) as bot:
        await bot.tree.sync()
        yield bot
