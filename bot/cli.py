"""The ``chatterbox-bot`` command line: run | sync | speak | emulator | db, and ``--version``.

Every failure a person can cause (a missing setting, a bad option, a refused request) ends in
one line on stderr and a non-zero exit: 2 for usage and configuration errors, 1 for everything
else. Tracebacks are for bugs only. Configuration errors include what only shows at start: a
DISCORD_TOKEN that Discord refuses, a DATABASE_URL that is malformed, unreachable or
read-only, a SQLite file another bot already runs on (``bot.store.instance_lock``); the
line names the setting and the kind of failure, never the URL (it may hold a password).

Logs go to stderr, as text by default or, with ``LOG_FORMAT=json``, one JSON object per line
(``time``, ``level``, ``logger``, ``message``, plus any ``extra`` fields such as ``error_id``),
written by python-json-logger rather than by hand so that escaping and tracebacks are right.
Interaction tokens are redacted before either formatter sees a record (``bot.app``).

``run`` stops cleanly on SIGTERM and SIGINT (handlers installed on the event loop, so they
also work as PID 1 in a container, where the kernel ignores signals nobody handles): it
stops taking jobs, lets deliveries in progress finish (``SHUTDOWN_GRACE_SECONDS``), releases
its job leases, closes everything and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings
from bot.version import version_line

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse's own convention)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _range(lo: float, hi: float, name: str):
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be from {lo} to {hi}, not {raw}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    from bot.gateway.emulator import add_emulator_arguments

    parser = _Parser(
        prog="chatterbox-bot",
        description="Discord bot for the Chatterbox TTS API (and its tools). Settings come from "
        "environment variables or .env; see .env.example.",
    )
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    sub.add_parser("run", help="connect to Discord and serve /speak and /quota")

    sync = sub.add_parser(
        "sync",
        help="register the slash commands with Discord (run after install/upgrade; needs only DISCORD_TOKEN)",
    )
    sync.add_argument("--guild", type=int, metavar="ID",
                      help="sync to one server only (instant; global sync can take up to an hour)")

    speak = sub.add_parser("speak", help="synthesize text to a WAV file through the same pipeline as /speak")
    speak.add_argument("text", help="the text to speak (long text is split into sentence chunks)")
    speak.add_argument("-o", "--output", required=True, type=Path, metavar="FILE",
                       help="where to write the WAV (24 kHz mono)")
    speak.add_argument("--voice-url", metavar="URL",
                       help="reference clip to clone the voice from (https; its first ~10 s matter)")
    speak.add_argument("--exaggeration", type=_range(0.0, 1.0, "--exaggeration"), default=0.5,
                       help="emotion intensity, 0.0-1.0 (default 0.5)")
    speak.add_argument("--temperature", type=_range(0.1, 1.0, "--temperature"), default=0.8,
                       help="sampling randomness, 0.1-1.0 (default 0.8)")
    speak.add_argument("--cfg", type=_range(0.0, 2.0, "--cfg"), default=0.5,
                       help="guidance weight / pacing, 0.0-2.0 (default 0.5)")
    speak.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    emulator = sub.add_parser(
        "emulator",
        help="run the local Chatterbox gateway emulator (test signal, not speech)",
        description="A local stand-in for the Chatterbox TTS API with a wallet, rate limit, queue, "
        "webhooks and failure injection. Its audio is a NON-SPEECH test signal.",
    )
    add_emulator_arguments(emulator)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION", parser_class=_Parser)
    db_sub.add_parser("upgrade", help="apply database migrations (also done at every start)")
    db_sub.add_parser("current", help="print the database's migration revision")
    prune = db_sub.add_parser(
        "prune", help="clear the text and voice URL of finished jobs older than AGE; anonymise forgotten "
        "members' spending rows whose quota day is over")
    prune.add_argument("--older-than", required=True, type=_duration, metavar="AGE",
                       help="e.g. 30d, 12h or 90m: jobs that finished longer ago than this are cleared")
    db_sub.add_parser("verify", help="check that the quota counters equal the usage ledger's sums")
    return parser


def _duration(raw: str) -> float:
    """``30d`` / ``12h`` / ``90m`` / ``45s`` as seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    number, unit = raw[:-1], raw[-1:].lower()
    if unit not in units or not number.isdigit() or int(number) <= 0:
        raise argparse.ArgumentTypeError(
            f"--older-than takes a positive number with d, h, m or s, like 30d, not {raw!r}"
        )
    return int(number) * units[unit]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        _configure_logging(settings)
        return asyncio.run(_dispatch(args, settings))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        problem = startup_problem(exc)
        if problem is None:
            raise
        print(f"chatterbox-bot: {problem}", file=sys.stderr)
        return EXIT_USAGE


def startup_problem(exc: BaseException) -> str | None:
    """One line for a failure of the setup rather than of the code (exit 2), else None."""
    import aiohttp
    import discord
    from sqlalchemy.exc import SQLAlchemyError

    from bot.store.database import DatabaseUnavailable
    from bot.store.engine import DatabaseUrlError
    from bot.store.instance_lock import InstanceLocked

    if isinstance(exc, ConfigError | DatabaseUrlError | InstanceLocked):
        return " ".join(str(exc).split())
    if isinstance(exc, aiohttp.ClientError):
        return f"cannot reach Discord ({type(exc).__name__}); check the network and try again."
    if isinstance(exc, discord.LoginFailure):
        return ("Discord refused DISCORD_TOKEN (401 Unauthorized): copy the bot's token again from "
                "https://discord.com/developers/applications (Bot → Reset Token).")
    if isinstance(exc, discord.Forbidden):
        return ("Discord refused access (403 Forbidden): with --guild, check the ID and that the bot "
                "was invited to that server with the applications.commands scope.")
    if isinstance(exc, DatabaseUnavailable | SQLAlchemyError | OSError):
        text = str(exc).lower()
        if "readonly" in text or "read-only" in text or "read only" in text:
            kind = "it is read-only"
        elif isinstance(exc, DatabaseUnavailable | ConnectionError | TimeoutError) or "connect" in text:
            kind = "it cannot be reached"
        elif "password authentication" in text or "does not exist" in text:
            kind = "it refused the login or does not exist"
        else:
            kind = type(exc).__name__
        return f"cannot use the database named by DATABASE_URL: {kind} ({type(exc).__name__})."
    return None


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def log_formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``LOG_FORMAT``: readable text, or one JSON object per line."""
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    return logging.Formatter(TEXT_FORMAT)


def _configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(settings.log_format))
    logging.basicConfig(level=settings.log_level, handlers=[handler])
    # discord.py and aiohttp are chatty at DEBUG; keep them at INFO unless asked. Alembic
    # narrates every start ("Context impl SQLiteImpl", ...): only its warnings are news.
    for noisy in ("discord.gateway", "discord.http", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger().level))
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))


async def _prune(settings: Settings, older_than: float) -> None:
    """``db prune``: clear old jobs' text, and anonymise the money rows that ``/privacy
    forget-me`` had to leave linked while they still set the member's limits."""
    from datetime import UTC, datetime, timedelta

    from bot.formats import plural
    from bot.store import open_database
    from bot.voices import anonymise_forgotten_money, longest_cooldown, prune_jobs

    db = await open_database(settings.database_url)
    try:
        now = datetime.now(UTC)
        cleared = await prune_jobs(db, finished_before=now - timedelta(seconds=older_than))
        anonymised = await anonymise_forgotten_money(db, now=now, cooldown=longest_cooldown(settings))
    finally:
        await db.close()
    print(f"cleared the text and voice URL of {plural(cleared, 'finished job')}")
    print(f"anonymised {plural(anonymised, 'spending row')} of members who asked to be forgotten")


async def _verify_counters(settings: Settings) -> int:
    """``db verify``: the quota counters against the ledger (exit 1 and one line each if not)."""
    from bot.quotas import counters
    from bot.store import open_database

    async with await open_database(settings.database_url) as db, db.read() as conn:
        problems = await counters.verify(conn)
    for problem in problems:
        print(f"mismatch: {problem}")
    if problems:
        print(f"chatterbox-bot: {len(problems)} quota counter(s) differ from the ledger", file=sys.stderr)
        return EXIT_FAILED
    print("quota counters agree with the usage ledger")
    return EXIT_OK


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "emulator":
        from bot.gateway.emulator import run_emulator

        await run_emulator(args)
        return EXIT_OK
    if args.command == "speak":
        from bot.speak_cli import speak_to_file

        return await speak_to_file(args, settings)
    if args.command == "db":
        from bot.store import current_revision, upgrade

        if args.db_command == "upgrade":
            revision = await upgrade(settings.database_url)
            print(f"database is at revision {revision}")
        elif args.db_command == "prune":
            await _prune(settings, args.older_than)
        elif args.db_command == "verify":
            return await _verify_counters(settings)
        else:
            print(await current_revision(settings.database_url) or "empty (no migrations applied)")
        return EXIT_OK
    if args.command in ("run", "sync"):
        from bot.app import run_bot, sync_commands

        settings.require_discord_token()
        if args.command == "run":
            settings.require_api_key()
            await run_bot(settings)
        else:
            await sync_commands(settings, guild_id=args.guild)  # no API key, no database
        return EXIT_OK
    raise AssertionError(f"unhandled command {args.command}")
