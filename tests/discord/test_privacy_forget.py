"""``/privacy forget-me`` through the sandbox for a member whom hands-free reading reads:
afterwards nothing they write is read, the reply says so, and the quota counters still agree
with the ledger (today's spending row stays hers until the quota day is over)."""

from __future__ import annotations

from bot.quotas import counters
from tests.discord.autoread_support import reading_world
from tests.discord.voices_support import answer


async def test_forget_me_stops_hands_free_reading_and_keeps_the_counters_true(make_harness) -> None:
    async with reading_world(make_harness) as r:
        h = r.h
        await r.opt_in(h.alice)
        await r.w.join(h.alice)
        message = await r.say(h.alice, "Read this one aloud, please.")
        await r.wait_marks(message, ["✅"])

        done = await answer(
            await h.sandbox.slash(["privacy", "forget-me"], user=h.alice, confirm=True), "Done"
        )

        assert "Hands-free reading no longer reads your messages" in done.content
        assert "opt-in removed in 1 server(s)" in done.content
        assert "Today's spending records keep your name until the quota day is over" in done.content
        assert "not read aloud" in await r.command("me", h.alice, choice="status")
        assert await r.handled("message", await h.sandbox.post(h.alice, h.general, "Not any more.")) is None
        assert h.emulator.counts["submit"] == 1
        [job] = await h.job_rows()
        assert (job["text"], job["user_id"]) == ("", 0)
        [row] = await h.ledger_rows()
        assert (row["user_id"], row["state"]) == (h.alice.id, "committed")
        async with h.bot.core.db.read() as conn:
            assert await counters.verify(conn) == []
