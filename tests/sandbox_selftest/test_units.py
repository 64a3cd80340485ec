"""Pure parts of the sandbox: snowflakes, permission computation, command registry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.clock import ManualClock
from tests.sandbox import DiscordAPIError, DiscordSandbox, Overwrite, Permission
from tests.sandbox.snowflake import DISCORD_EPOCH_MS, SnowflakeFactory


def test_snowflakes_increase_and_carry_the_clock_time(clock: ManualClock) -> None:
    make = SnowflakeFactory(clock)
    first, second = make(), make()
    assert second > first
    clock.advance(5)
    third = make()
    assert (third >> 22) - (first >> 22) == 5000
    created = datetime.fromtimestamp(((third >> 22) + DISCORD_EPOCH_MS) / 1000, UTC)
    assert created == clock.now()


def test_permissions_follow_discords_overwrite_order(clock: ManualClock) -> None:
    sandbox = DiscordSandbox(clock=clock)
    guild = sandbox.add_guild("g")
    helpers = guild.add_role("helpers", permissions=0)
    admins = guild.add_role("admins", permissions=Permission.ADMINISTRATOR)
    helper = guild.add_member("h", roles=[helpers])
    muted = guild.add_member("m", roles=[helpers])
    admin = guild.add_member("a", roles=[admins])
    channel = guild.add_text_channel(
        "c",
        overwrites={
            guild.everyone: Overwrite(deny=Permission.SEND_MESSAGES),
            helpers: Overwrite(allow=Permission.SEND_MESSAGES),
            muted: Overwrite(deny=Permission.SEND_MESSAGES),
        },
    )
    hidden = guild.add_text_channel(
        "hidden", overwrites={guild.everyone: Overwrite(deny=Permission.VIEW_CHANNEL)}
    )
    plain = guild.add_member("p")

    assert helper.permissions_in(channel) & Permission.SEND_MESSAGES
    assert not muted.permissions_in(channel) & Permission.SEND_MESSAGES
    # Without Send Messages, a text channel also loses Attach Files.
    assert not plain.permissions_in(channel) & Permission.ATTACH_FILES
    assert plain.permissions_in(hidden) == 0
    assert admin.permissions_in(hidden) & Permission.VIEW_CHANNEL
    owner = guild.member(guild.owner_id)
    assert owner.permissions_in(hidden) & Permission.MANAGE_GUILD


def test_bulk_overwrite_keeps_ids_and_rejects_bad_schemas(clock: ManualClock) -> None:
    sandbox = DiscordSandbox(clock=clock)
    first = sandbox.register_commands([{"name": "speak", "description": "Speak", "options": []}])
    again = sandbox.register_commands(
        [{"name": "speak", "description": "Speak!", "options": []}, {"name": "quota", "description": "Q"}]
    )
    assert again[0]["id"] == first[0]["id"] and again[1]["id"] != first[0]["id"]
    for bad in (
        {"name": "Speak", "description": "upper case"},
        {"name": "speak", "description": ""},
        {"name": "speak", "description": "d", "options": [{"name": "x", "description": "d", "type": 99}]},
    ):
        with pytest.raises(DiscordAPIError) as caught:
            sandbox.register_commands([bad])
        assert caught.value.code == 50035 and caught.value.status == 400
