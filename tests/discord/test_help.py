"""/help and /about, as a member runs them in the sandbox."""

from __future__ import annotations

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
        assert "sent to the Chatterbox TTS service" in text and "delete what is stored about you" in text
        assert "Source: https://example.org/chatterbox (MIT license)." in text


async def test_about_without_a_source_address_says_it_is_not_published(harness: Harness) -> None:
    text = (await _answer(harness, "about")).content
    assert "has not published an address" in text
