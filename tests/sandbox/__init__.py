"""A protocol-faithful Discord sandbox for tests: REST, gateway websocket and CDN on
loopback, which an unmodified discord.py client logs into. See ``server.DiscordSandbox``.

Usage::

    async with DiscordSandbox(clock=clock) as sandbox:          # clock: share it with the bot
        guild = sandbox.add_guild("Guild", upload_limit=8 * 1024 * 1024)
        mods = guild.add_role("Mods", permissions=Permission.MANAGE_GUILD)
        general = guild.add_text_channel("general")
        quiet = guild.add_text_channel(
            "quiet", overwrites={guild.bot_member: Overwrite(deny=Permission.SEND_MESSAGES)}
        )
        lounge = guild.add_voice_channel("Lounge")
        alice = guild.add_member("alice")
        mo = guild.add_member("mo", roles=[mods])

        async with sandbox.run_bot(ChatterboxBot(...)) as bot:   # configure_client + start + wait_ready
            await bot.tree.sync()                                  # real schema -> sandbox registry
            handle = await sandbox.slash(
                "speak", user=alice, channel=general, text="hi",
                voice=sandbox.attachment(wav_bytes, "clip.wav", "audio/wav"), exaggeration=0.7,
            )
            await handle.response()                                # initial callback (handle.deferred ...)
            card = await handle.wait_for_original(lambda m: "done" in m.content)
            audio = await sandbox.wait_for_message(general, lambda m: bool(m.attachments))
            assert audio.attachments[0].data == expected_wav
            await sandbox.click(card, "job:cancel", user=mo)
            await sandbox.slash("quota set-user", user=mo, options={"user": alice, "limit": 3})
            await sandbox.move_member(alice, lounge)              # returns once the bot processed it

Voice: ``sandbox.voice_server`` is a real voice server (TLS websocket + UDP RTP, decrypted
and Opus-decoded); give the bot ``connector=sandbox.voice_connector()`` so discord.py's
``wss://`` dial trusts it, then ``sandbox.listening(lounge)`` is what a member there heard.
Failure knobs live on the server (``refuse_with``, ``silent``, ``drop_discovery``, and
``session.close(code)`` / ``session.drop()``); ``sandbox.set_voice_moves`` and
``sandbox.set_rtc_region`` produce moves and region changes.
"""

from tests.sandbox.errors import DiscordAPIError, SandboxError, SandboxTimeout
from tests.sandbox.interactions import Callback, InteractionHandle, Refusal
from tests.sandbox.messages import EPHEMERAL, LOADING, Message, Revision, StoredFile
from tests.sandbox.models import Channel, Guild, Member, Overwrite, Role, User, VoiceState
from tests.sandbox.permissions import DEFAULT_BOT, DEFAULT_EVERYONE, Permission
from tests.sandbox.server import DiscordSandbox
from tests.sandbox.state import DEFAULT_UPLOAD_LIMIT

__all__ = [
    "DEFAULT_BOT",
    "DEFAULT_EVERYONE",
    "DEFAULT_UPLOAD_LIMIT",
    "EPHEMERAL",
    "LOADING",
    "Callback",
    "Channel",
    "DiscordAPIError",
    "DiscordSandbox",
    "Guild",
    "InteractionHandle",
    "Member",
    "Message",
    "Overwrite",
    "Permission",
    "Refusal",
    "Revision",
    "Role",
    "SandboxError",
    "SandboxTimeout",
    "StoredFile",
    "User",
    "VoiceState",
]
