"""The seam to text cleanup: ``clean_message(text, names)``.

Until the shared cleanup (``bot.speech.cleanup``, the "Replays cost nothing" work) is on this
branch, ``basic_clean`` does the part hands-free reading cannot do without: user, role and
channel mentions become names, custom emoji become their name, links become "a link", and
``@everyone``/``@here`` lose the ``@``. When ``bot.speech.cleanup.clean_text`` exists it is
used instead (same signature).
"""

from __future__ import annotations

import importlib
import re

from bot.autoread.rules import Cleaner, Names

_USER = re.compile(r"<@!?(\d{1,20})>")
_ROLE = re.compile(r"<@&(\d{1,20})>")
_CHANNEL = re.compile(r"<#(\d{1,20})>")
_EMOJI = re.compile(r"<a?:(\w{1,32}):\d{1,20}>")
_URL = re.compile(r"<?https?://\S+>?", re.IGNORECASE)


def basic_clean(text: str, names: Names) -> str:
    text = _USER.sub(lambda m: names.user(int(m[1])) or "someone", text)
    text = _ROLE.sub(lambda m: names.role(int(m[1])) or "a role", text)
    text = _CHANNEL.sub(lambda m: names.channel(int(m[1])) or "a channel", text)
    text = _EMOJI.sub(lambda m: m[1].replace("_", " "), text)
    text = _URL.sub("a link", text)
    text = text.replace("@everyone", "everyone").replace("@here", "here")
    return " ".join(text.split())


def default_cleaner() -> Cleaner:
    """The shared cleanup when present, else ``basic_clean``."""
    try:
        module = importlib.import_module("bot.speech.cleanup")
    except ImportError:
        return basic_clean
    return module.clean_text
