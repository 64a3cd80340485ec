"""Text cleanup for hands-free reading: the shared ``bot.speech.cleanup.clean_text``.

A message is read as /speak reads a text: mentions become display names, custom emoji their
name, links "a link to example.com", code blocks "a code block", markdown and ``[tags]`` go
(see ``bot.speech.cleanup``). ``default_cleaner`` is the seam a test or another front end can
replace; the Discord side passes a ``Names`` resolver built from the message.
"""

from __future__ import annotations

from bot.autoread.rules import Cleaner
from bot.speech.cleanup import clean_text


def default_cleaner() -> Cleaner:
    return clean_text
