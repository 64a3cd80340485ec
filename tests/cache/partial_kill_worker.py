"""A pipeline process killed (SIGKILL) with a partly cached job in flight
(``python -m tests.cache.partial_kill_worker``; see tests/cache/test_partial_kill.py).

It caches the middle sentence with a request of its own, then starts the three-sentence text
(its chunk 1 comes from the cache, chunks 0 and 2 are POSTed), prints ``submitted <job id>``
once both made chunks were accepted (the cached part was written with the job before that),
and waits to be killed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bot.config import Settings
from bot.gateway.models import TTSParams
from bot.services import Services
from bot.speech.events import DeliveryTarget, Requester, SpeechEvent, Submitted
from bot.store import open_database

FIRST = "The first sentence is new and has to be made."
MIDDLE = "The middle sentence was said before, by someone."
LAST = "The last sentence is new as well, and paid for."
TEXT = f"{FIRST} {MIDDLE} {LAST}"
WHO = Requester(user_id=101, display_name="worker", guild_id=5001)
TARGET = DeliveryTarget(kind="file", channel_id=7001)


def settings_for(args: argparse.Namespace) -> Settings:
    values: dict[str, Any] = {
        "chatterbox_gateway_url": args.gateway,
        "chatterbox_api_key": args.key,
        "chatterbox_allow_http": True,
        "database_url": args.db,
        "cache_dir": args.cache_dir,
        "quota_cooldown_seconds": 0,
        "chatterbox_chunk_chars": 60,
        "chatterbox_http_timeout": 5,
        "job_lease_seconds": 1.0,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def main(args: argparse.Namespace) -> int:
    db = await open_database(args.db, schema=args.schema)
    services = await Services.open(settings_for(args), database=db)
    warm = await services.speech.start(WHO, MIDDLE, voice_url=None, params=TTSParams(), target=TARGET)
    await warm.result()
    await services.speech.mark_delivered(warm.job_id)
    accepted = asyncio.Event()
    submitted = 0

    async def on_event(event: SpeechEvent) -> None:
        nonlocal submitted
        if isinstance(event, Submitted):
            submitted += 1
            if submitted == 2:
                accepted.set()

    job = await services.speech.start(WHO, TEXT, voice_url=None, params=TTSParams(), target=TARGET,
                                      on_event=on_event)
    await accepted.wait()
    print(f"submitted {job.job_id}", flush=True)
    await asyncio.Event().wait()  # until SIGKILL
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--schema")
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--cache-dir", required=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
