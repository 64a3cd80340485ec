"""FairQueue: round-robin between members, the per-member cap, positions, readiness."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.playback.queue import FairQueue, QueueFull, ordinal


class Clip:
    """A hashable stand-in for a VoiceClip."""

    def __init__(self, name: str, ready: bool = True) -> None:
        self.name = name
        self.ready = ready

    def __repr__(self) -> str:
        return self.name


def drain(queue: FairQueue[Clip]) -> list[str]:
    names = []
    while (clip := queue.pop_next()) is not None:
        names.append(clip.name)
    return names


def test_one_members_clips_do_not_block_the_others() -> None:
    queue: FairQueue[Clip] = FairQueue(10)
    for name in ("a1", "a2", "a3", "a4", "a5"):
        queue.add(1, Clip(name))
    queue.add(2, Clip("b1"))
    queue.add(3, Clip("c1"))
    queue.add(2, Clip("b2"))
    assert drain(queue) == ["a1", "b1", "c1", "a2", "b2", "a3", "a4", "a5"]


def test_a_member_who_just_played_waits_behind_a_newcomer() -> None:
    queue: FairQueue[Clip] = FairQueue(10)
    queue.add(1, Clip("a1"))
    assert queue.pop_next() is not None  # a1 plays; the queue is empty
    queue.add(1, Clip("a2"))
    queue.add(1, Clip("a3"))
    queue.add(2, Clip("b1"))
    assert drain(queue) == ["b1", "a2", "a3"]


def test_positions_move_when_a_newcomer_goes_ahead() -> None:
    queue: FairQueue[Clip] = FairQueue(10)
    a1, a2, b1 = Clip("a1"), Clip("a2"), Clip("b1")
    assert queue.add(1, a1) == 1
    assert queue.add(1, a2) == 2
    assert queue.add(2, b1) == 2
    assert queue.positions() == {a1: 1, b1: 2, a2: 3}
    assert queue.position(a2) == 3 and queue.position(Clip("x")) is None
    assert queue.waiting() == [a1, b1, a2]
    assert queue.waiting_with_members() == [(1, a1), (2, b1), (1, a2)]


def test_cap_counts_waiting_clips_only() -> None:
    queue: FairQueue[Clip] = FairQueue(2)
    queue.add(1, Clip("a1"))
    queue.add(1, Clip("a2"))
    with pytest.raises(QueueFull) as caught:
        queue.add(1, Clip("a3"))
    assert caught.value.cap == 2 and caught.value.member_id == 1
    queue.add(2, Clip("b1"))  # others are not affected
    queue.pop_next()  # a1 starts playing: it no longer counts
    queue.add(1, Clip("a3"))
    assert queue.count_for(1) == 2


def test_unready_clips_keep_their_place_without_blocking() -> None:
    queue: FairQueue[Clip] = FairQueue(10)
    slow, fast = Clip("slow", ready=False), Clip("fast")
    queue.add(1, slow)
    queue.add(2, fast)
    assert queue.pop_next(lambda c: c.ready) is fast
    assert queue.pop_next(lambda c: c.ready) is None
    assert queue.position(slow) == 1
    slow.ready = True
    assert queue.pop_next(lambda c: c.ready) is slow


def test_remove_and_clear() -> None:
    queue: FairQueue[Clip] = FairQueue(10)
    a1, b1, a2 = Clip("a1"), Clip("b1"), Clip("a2")
    for member, clip in ((1, a1), (2, b1), (1, a2)):
        queue.add(member, clip)
    assert queue.remove(b1) and not queue.remove(b1)
    assert b1 not in queue and len(queue) == 2
    with pytest.raises(ValueError):
        queue.add(1, a1)
    assert queue.clear() == [a1, a2]
    assert len(queue) == 0 and queue.pop_next() is None


def test_invalid_cap() -> None:
    with pytest.raises(ValueError):
        FairQueue(0)


@pytest.mark.parametrize(
    ("n", "text"),
    [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"),
     (21, "21st"), (22, "22nd"), (101, "101st"), (111, "111th")],
)
def test_ordinal(n: int, text: str) -> None:
    assert ordinal(n) == text


@given(st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=40))
def test_while_two_members_both_wait_neither_gets_two_turns_ahead(arrivals: list[int]) -> None:
    """All clips queued up front: between two members with clips left, plays differ by ≤ 1."""
    queue: FairQueue[Clip] = FairQueue(50)
    members = {}
    for index, member in enumerate(arrivals):
        clip = Clip(f"{member}-{index}")
        members[clip] = member
        queue.add(member, clip)
    remaining = {m: arrivals.count(m) for m in set(arrivals)}
    played = dict.fromkeys(remaining, 0)
    while (clip := queue.pop_next()) is not None:
        member = members[clip]
        played[member] += 1
        remaining[member] -= 1
        waiting = [m for m in remaining if remaining[m] > 0]
        for other in waiting:
            if remaining[member] > 0:
                assert abs(played[member] - played[other]) <= 1
