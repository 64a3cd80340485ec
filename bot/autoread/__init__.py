"""Hands-free reading: messages in one channel read aloud for members who opted in (no discord).

``rules`` decides what is read and how it is cut; ``store`` keeps the per-server settings and
the members' opt-ins; ``reader`` is the per-server reader (round-robin between members, a
short look-ahead of started reads, edits and deletions, throttled refusal notes); ``service``
ties them together; ``cleaning`` (the shared text cleanup) and ``voices`` (members' default
voices) are its seams. The Discord side is ``cogs.autoread``.
"""

from bot.autoread.rules import IncomingMessage, Names, skip_reason, spoken_text
from bot.autoread.store import AutoreadSettings, AutoreadStore

__all__ = ["AutoreadSettings", "AutoreadStore", "IncomingMessage", "Names", "skip_reason", "spoken_text"]
