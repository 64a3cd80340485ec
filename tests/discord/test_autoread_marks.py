"""Hands-free reading's marks and refusal notes through the sandbox: ⏳ 🔊 ✅ on a message,
⚠️ for a refusal at most once per member per hour (the hour on an injected ``ManualClock``),
and a private note instead when the ⚠️ cannot be added. Never a channel message."""

from __future__ import annotations

from bot.autoread.reader import NoteThrottle, ReadState
from bot.clock import ManualClock
from tests.discord.autoread_support import Reading, reading_world
from tests.sandbox import Message, Overwrite, Permission

OVER_QUOTA = {"quota_requests_per_day": 1}


def no_bot_messages(r: Reading) -> bool:
    bot_id = r.h.sandbox.bot_user.id
    return not [m for m in r.h.messages() if m.author.id == bot_id]


async def test_a_refusal_is_shown_again_only_after_an_hour(make_harness) -> None:
    async with reading_world(make_harness, settings=OVER_QUOTA) as r:
        h = r.h
        hour = ManualClock()
        r.cog.service.throttle = NoteThrottle(hour)  # before the reader exists: it takes this one
        answer = await r.command("me", h.alice, choice="on")
        assert "A ⚠️ on a message means it was not read: `/autoread me status` says why." in answer
        await r.w.join(h.alice)

        messages: list[Message] = []

        async def say(text: str) -> None:
            messages.append(await r.say(h.alice, text))
            await r.wait_reader(lambda reader: len(reader.finished) == len(messages))

        await say("The one my quota pays for.")
        await say("Over quota, and told so.")
        await say("Over quota, told already.")
        hour.advance(3599)
        await say("Still within the hour.")
        hour.advance(1)
        await say("An hour later: told again.")
        expected = [["✅"], ["⚠️"], [], [], ["⚠️"]]
        await h.sandbox.wait_for(lambda: [r.marks(m) for m in messages] == expected, describe="the marks")
        assert [r.read_of(m).state for m in messages] == [ReadState.DONE] + [ReadState.REFUSED] * 4  # type: ignore[union-attr]
        assert h.emulator.counts["submit"] == 1
        assert no_bot_messages(r) and h.sandbox.state.direct_messages == []


async def test_without_add_reactions_the_refusal_is_a_private_note_once(make_harness) -> None:
    async with reading_world(make_harness, settings=OVER_QUOTA) as r:
        h = r.h
        h.general.set_permissions(h.guild.bot_member, Overwrite(deny=Permission.ADD_REACTIONS))
        await r.opt_in(h.alice)
        await r.w.join(h.alice)
        for text in ("Read this one.", "Refused, and told privately.", "Refused, not told again."):
            await r.say(h.alice, text)
        await r.wait_reader(lambda reader: len(reader.finished) == 3)
        [(to, note)] = await h.sandbox.wait_for(
            lambda: h.sandbox.state.direct_messages, describe="the private note"
        )
        assert to == h.alice.id
        assert note.startswith(f"I could not read your message in <#{h.general.id}> aloud: ")
        assert "resets in" in note and "`/autoread me status`" in note
        await r.cog.outlet.applied()
        assert len(h.sandbox.state.direct_messages) == 1
        assert all(r.marks(m) == [] for m in h.messages())
        assert no_bot_messages(r)
        assert r.played() == ["Read this one."]
