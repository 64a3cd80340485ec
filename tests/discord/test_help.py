"""/help and /about, as a member runs them in the sandbox."""

from __future__ import annotations

import re

from bot.version import version
from tests.discord.conftest import HarnessFactory
from tests.discord.harness import Harness


async def _answer(h: Harness, command: str, **knobs):
    handle = await h.sandbox.slash(command, user=knobs.pop("user", h.alice), channel=h.general, **knobs)
    return await handle.wait_for_message(lambda m: m.ephemeral and len(m.content) > 40)


async def test_help_explains_the_bot_this_servers_limits_and_consent(make_harness: HarnessFactory) -> None:
    async with make_harness(settings={"quota_max_chars_per_request": 300, "quota_requests_per_day": 7,
                                      "chatterbox_max_text_chars": 1500}) as h:
        # A moderator's server default wins over the built-in one, and /help shows it.
        await h.bot.core.quotas.admin.set_guild_default(h.guild.id, actor_id=h.mo.id, chars_per_day=900)
        answer = await _answer(h, "help")
        text = answer.content
        assert answer.ephemeral and h.messages() == []  # nothing public
        assert "The bot takes at most 1,500 characters in one /speak" in text
        assert "This server allows you 300 characters per request." in text
        assert "7 requests and 900 characters a day" in text and "/quota me" in text
        assert "Consent:" in text and "agreed to have their voice cloned" in text
        assert "attach a clip as `clip:`" in text and "`voice:` picks a saved voice" in text
        assert "**Saved voices:** `/voices add`" in text
        assert "/about" in text


async def test_help_for_an_exempt_member_says_so(harness: Harness) -> None:
    h = harness
    await h.bot.core.quotas.admin.add_exempt_role(h.guild.id, h.mods.id, actor_id=h.mo.id)
    text = (await _answer(h, "help", user=h.mo)).content
    assert "exempts your role from its per-member limits" in text
    assert "characters per request" not in text


async def test_about_tells_version_privacy_and_source(make_harness: HarnessFactory) -> None:
    async with make_harness(settings={"about_source_url": "https://example.org/chatterbox"}) as h:
        text = (await _answer(h, "about")).content
        assert f"**Chatterbox TTS for Discord** {version()}" in text
        assert "sent to the Chatterbox TTS service" in text
        assert "The voices you save with `/voices add` keep their clip" in text
        assert "`/privacy forget-me` deletes your saved voices" in text
        assert "Source: https://example.org/chatterbox (MIT license)." in text


async def test_about_without_a_source_address_says_it_is_not_published(harness: Harness) -> None:
    text = (await _answer(harness, "about")).content
    assert "has not published an address" in text


def _commands() -> dict[str, set[str]]:
    """Every slash command the cogs define: name -> its subcommands (groups) or options."""
    import importlib
    import pkgutil

    from discord.ext import commands

    import cogs

    found: dict[str, set[str]] = {}
    for module_info in pkgutil.walk_packages(cogs.__path__, "cogs."):
        module = importlib.import_module(module_info.name)
        for cls in vars(module).values():
            is_cog = isinstance(cls, type) and issubclass(cls, commands.Cog)
            if not is_cog or cls.__module__ != module.__name__:
                continue
            if cls.__cog_is_app_commands_group__:
                found[cls.__cog_group_name__] = {c.name for c in cls.__cog_app_commands__}
            else:
                for command in cls.__cog_app_commands__:
                    found[command.name] = {p.name for p in getattr(command, "parameters", [])}
    return found


def test_help_and_about_name_only_commands_and_options_that_exist() -> None:
    from cogs.help.texts import HelpFacts, about_text, help_text

    known = _commands()
    text = help_text(HelpFacts(max_text_chars=2000, voice_max_seconds=30, voice_max_mb=8, policy=None))
    text += "\n" + about_text("1.0", None)
    named = re.findall(r"`(/[\w-]+(?: [\w-]+)?)", text)
    assert "/voices add" in named and "/privacy forget-me" in named
    for command in named:
        name, _, sub = command[1:].partition(" ")
        assert name in known, command
        assert not sub or sub in known[name] or sub.endswith(":"), command
    # The options /help tells members to type are the /speak command's own.
    options = set(re.findall(r"`(?:/speak )?(\w+):", text))
    assert {"text", "voice", "clip", "output"} <= options
    assert options <= known["speak"], options - known["speak"]


def test_help_fits_one_message_with_the_longest_limits() -> None:
    from bot.quotas.policy import ResolvedPolicy
    from cogs.help.texts import HelpFacts, help_text

    big = ResolvedPolicy(requests_per_day=100_000, chars_per_day=10_000_000, cooldown_seconds=86_400,
                         max_in_flight=100, max_chars_per_request=100_000)
    assert len(help_text(HelpFacts(max_text_chars=2000, voice_max_seconds=30, voice_max_mb=25.5,
                                   policy=big))) <= 2000
