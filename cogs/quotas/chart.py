"""The PNG chart ``/quota usage`` attaches: the last 30 days of requests and cost.

Top panel: requests per day, the most active members stacked (the rest as "others"), the
server's daily request budget as a dashed line. Bottom panel: cost per day with the daily cost
cap as a dashed line. The text summary stays in the message for screen readers.

Why Pillow and not matplotlib: the chart is two bar panels, a legend and two lines, which
Pillow's ``ImageDraw`` and its bundled scalable font draw in ~150 lines, while matplotlib
brings numpy, fontTools and more (~170 MB installed against Pillow's ~22 MB) and ~50 MB of
resident memory to every bot process that ever renders a chart.

Readable in Discord's dark and light themes: the picture is an opaque light card with a
border (it stands out on both backgrounds instead of depending on either), dark text, and the
Okabe-Ito colour-blind-safe palette. Rendering is CPU work: callers run ``render_chart`` in a
thread (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from PIL import Image, ImageDraw, ImageFont

from bot.quotas import UsageHistory
from bot.voices.privacy import FORGOTTEN_USER

WIDTH, HEIGHT = 1000, 640
BACKGROUND = "#f6f7f9"
BORDER = "#c9ced6"
TEXT = "#1f2328"
MUTED = "#59636e"
GRID = "#dde1e6"
LIMIT = "#c0392b"
COST = "#4b5563"
OTHERS = "#a3abb5"
MEMBER_COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9")

_LEFT, _RIGHT = 78, WIDTH - 24
_REQUESTS_TOP, _REQUESTS_BOTTOM = 136, 410
_COST_TOP, _COST_BOTTOM = 450, 580


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def nice_ceiling(value: float) -> tuple[float, float]:
    """A round axis maximum at or above ``value`` and its tick step (4-5 ticks)."""
    if value <= 0:
        return 1.0, 0.25
    raw = value / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if step * 4 >= value:
            return step * math.ceil(value / step), step
    return value, raw  # pragma: no cover - the loop always returns


def _axis(
    draw: ImageDraw.ImageDraw, top: int, bottom: int, maximum: float, step: float,
    label: Callable[[float], str],
) -> Callable[[float], float]:
    """Grid lines and tick labels; returns value -> y."""
    def y(value: float) -> float:
        return bottom - (bottom - top) * value / maximum

    small = _font(13)
    tick = 0.0
    while tick <= maximum + 1e-9:
        at = y(tick)
        draw.line([(_LEFT, at), (_RIGHT, at)], fill=GRID, width=1)
        draw.text((_LEFT - 8, at), label(tick), fill=MUTED, font=small, anchor="rm")
        tick += step
    draw.line([(_LEFT, bottom), (_RIGHT, bottom)], fill=MUTED, width=1)
    return y


def _dashed(draw: ImageDraw.ImageDraw, y: float, text: str) -> None:
    x = _LEFT
    while x < _RIGHT:
        draw.line([(x, y), (min(x + 10, _RIGHT), y)], fill=LIMIT, width=2)
        x += 16
    draw.text((_RIGHT - 4, y - 4), text, fill=LIMIT, font=_font(13), anchor="rb")


def render_chart(history: UsageHistory, names: Mapping[int, str]) -> bytes:
    """The chart as PNG bytes (``WIDTH`` x ``HEIGHT``); ``names`` labels the top members."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle([(0, 0), (WIDTH - 1, HEIGHT - 1)], outline=BORDER, width=2)
    days = len(history.days)
    total_requests, total_cost = sum(history.requests), sum(history.cost, Decimal(0))
    draw.text((24, 18), f"Text-to-speech usage, last {days} days", fill=TEXT, font=_font(24))
    draw.text((24, 50), f"{total_requests:,} requests, ${total_cost:,.2f} in all · each bar is one quota day",
              fill=MUTED, font=_font(15))

    # Legend.
    x = 24
    legend: list[tuple[str, str]] = [
        (MEMBER_COLOURS[i], names.get(user_id, f"member …{str(user_id)[-4:]}"))
        for i, (user_id, _) in enumerate(history.top_members)
    ]
    legend.append((OTHERS, "others"))
    for colour, label in legend:
        text = label if len(label) <= 22 else label[:21] + "…"
        draw.rectangle([(x, 80), (x + 14, 94)], fill=colour)
        draw.text((x + 20, 87), text, fill=TEXT, font=_font(14), anchor="lm")
        x += 20 + int(draw.textlength(text, font=_font(14))) + 22

    slot = (_RIGHT - _LEFT) / max(days, 1)
    bar = max(2.0, slot * 0.72)

    # Requests, stacked.
    budget = history.daily_request_budget
    highest = max([*history.requests, budget or 0, 1])
    maximum, step = nice_ceiling(highest * 1.08 if budget and budget >= max(history.requests) else highest)
    y = _axis(draw, _REQUESTS_TOP, _REQUESTS_BOTTOM, maximum, step, lambda v: f"{v:,.0f}")
    draw.text((24, _REQUESTS_TOP - 16), "requests per day", fill=MUTED, font=_font(13), anchor="ls")
    for i in range(days):
        left = _LEFT + i * slot + (slot - bar) / 2
        level = 0
        stacks: list[tuple[int, str]] = [
            (per_day[i], MEMBER_COLOURS[n]) for n, (_, per_day) in enumerate(history.top_members)
        ]
        stacks.append((max(0, history.requests[i] - sum(c for c, _ in stacks)), OTHERS))
        for count, colour in stacks:
            if count <= 0:
                continue
            draw.rectangle([(left, y(level + count)), (left + bar, y(level))], fill=colour)
            level += count
    if budget is not None:
        _dashed(draw, y(budget), f"daily budget {budget:,}")

    # Cost.
    cap = history.daily_cost_cap
    costs = [float(c) for c in history.cost]
    highest_cost = max([*costs, float(cap or 0), 0.01])
    maximum, step = nice_ceiling(highest_cost * (1.08 if cap is not None else 1.0))
    y = _axis(draw, _COST_TOP, _COST_BOTTOM, maximum, step, lambda v: f"${v:,.2f}")
    draw.text((24, _COST_TOP - 16), "cost per day", fill=MUTED, font=_font(13), anchor="ls")
    for i, cost in enumerate(costs):
        if cost > 0:
            left = _LEFT + i * slot + (slot - bar) / 2
            draw.rectangle([(left, y(cost)), (left + bar, y(0))], fill=COST)
    if cap is not None:
        _dashed(draw, y(float(cap)), f"daily cost cap ${cap:,.2f}")

    # Dates under the cost panel: every fifth day and today.
    for i, day in enumerate(history.days):
        if i % 5 == 0 or i == days - 1:
            centre = _LEFT + i * slot + slot / 2
            draw.text((centre, _COST_BOTTOM + 8), day.strftime("%b %d"), fill=MUTED, font=_font(13),
                      anchor="mt")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


#: The chart's label for spending whose members used /privacy forget-me (ledger user id 0).
FORGOTTEN_LABEL = "forgotten members"


def member_names(user_ids: Sequence[int], lookup: Callable[[int], str | None]) -> dict[int, str]:
    """Display names the cog can find (members not cached keep an id-based label); the
    anonymised spending of members who were forgotten is labelled as such, not "member …0"."""
    found = {
        user_id: FORGOTTEN_LABEL if user_id == FORGOTTEN_USER else lookup(user_id) for user_id in user_ids
    }
    return {user_id: name for user_id, name in found.items() if name}
