"""``/quota`` and ``/speak`` together: a moderator's change holds on the very next ``/speak``.

The whole bot runs (all cogs) against the gateway emulator, the Discord sandbox and SQLite.
The 402 alert itself (posted in the alert channel) is the /speak tests' business; here the
setting that routes it is checked in ``test_quota_commands``.
"""

from __future__ import annotations

from pathlib import Path

from tests.discord.harness import Harness, open_harness
from tests.sandbox import InteractionHandle, Member, Message


async def quota(h: Harness, sub: str, who: Member, **options: object) -> Message:
    """Run ``/quota <sub>`` as ``who``; its ephemeral answer."""
    handle = await h.sandbox.slash(f"quota {sub}", user=who, options=options)
    message = await handle.wait_for_original()
    assert message.ephemeral
    return message


async def spoken(h: Harness, user: Member, text: str) -> Message:
    """Run /speak as ``user`` and wait for the audio it posts in #general."""
    before = h.audio_messages()
    await h.speak(user, text=text)
    return await h.sandbox.wait_for_message(
        h.general, lambda m: bool(m.attachments), after=before[-1] if before else None
    )


async def refused(handle: InteractionHandle, words: str) -> Message:
    """The ephemeral answer of a refused /speak that contains ``words``."""
    message = await handle.wait_for_message(lambda m: words in m.content)
    assert message.ephemeral
    return message


async def test_me_after_a_speak(tmp_path: Path) -> None:
    async with open_harness(tmp_path) as h:
        text = "Hello there, this is a quota test."
        await spoken(h, h.alice, text)
        me = (await quota(h, "me", h.alice)).content
        assert "Requests today: 1 used, 19 of 20 left" in me
        assert f"Characters today: {len(text)} used, {5000 - len(text):,} of 5,000 left" in me
        assert "Requests today: 0 used" in (await quota(h, "me", h.bob)).content


async def test_a_moderators_change_takes_effect_on_the_next_speak(tmp_path: Path) -> None:
    async with open_harness(tmp_path) as h:
        await quota(h, "set-user", h.mo, user=h.alice, requests_per_day=1)
        await spoken(h, h.alice, "The first one is allowed.")
        before = len(await h.ledger_rows())

        handle = await h.speak(h.alice, text="The second one is not.")
        refusal = await refused(handle, "1/1 request")
        resets_at = (await h.bot.core.quotas.usage(h.guild.id, h.alice.id)).resets_at
        assert f"(at <t:{int(resets_at.timestamp())}:t> your time)" in refusal.content
        assert len(await h.ledger_rows()) == before  # nothing reserved for the refused one
        await spoken(h, h.bob, "Bob is not limited by Alice's override.")

        usage = (await quota(h, "usage", h.mo)).content
        # Ties rank by user id; both members appear with their one request.
        first, second = sorted((h.alice.id, h.bob.id))
        assert f"1. <@{first}>: 1 request ·" in usage and f"2. <@{second}>: 1 request ·" in usage
        assert "Requests: 2 ·" in usage

        await quota(h, "set-user", h.mo, user=h.alice, requests_per_day=5)
        await spoken(h, h.alice, "Raised again, so this one works.")
        assert "Requests today: 2 used, 3 of 5 left" in (await quota(h, "me", h.alice)).content


async def test_pause_refuses_speak_until_resume(tmp_path: Path) -> None:
    async with open_harness(tmp_path) as h:
        await quota(h, "pause", h.mo, reason="quiet hours")
        handle = await h.speak(h.alice, text="Is anybody there?")
        refusal = await refused(handle, "paused text-to-speech")
        assert "quiet hours" in refusal.content
        assert await h.ledger_rows() == [] and await h.job_rows() == []
        assert h.emulator.counts["submit"] == 0

        await quota(h, "resume", h.mo)
        await spoken(h, h.alice, "Now it works again.")
        assert len(await h.ledger_rows()) == 1
        assert h.emulator.counts["submit"] == 1
