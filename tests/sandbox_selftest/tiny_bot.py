"""A tiny discord.py bot that exercises the sandbox the way the real bot will.

Commands: /ping (string, number Range, attachment), /render (defer, follow-up with a file,
edits of the original), /job (a View with a Cancel button only the requester may use and a
Refresh button that defers), /quota (an ``app_commands.Group``), /feedback (a modal), /pick
(autocomplete), and /act, which waits for the test's go-ahead and then
does one thing that a sandbox rule should refuse, reporting the outcome (or the exception)
on ``bot.outcomes``. Voice goes through ``RecordingVoice``, a ``VoiceProtocol`` that
performs the gateway half of a voice connection and nothing else.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands


class CancelView(discord.ui.View):
    def __init__(self, requester_id: int) -> None:
        super().__init__(timeout=None)
        self.requester_id = requester_id

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.danger, custom_id="job:cancel")
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button[CancelView]) -> None:
        if interaction.user.id != self.requester_id:
            await interaction.response.send_message("Only the requester can cancel.", ephemeral=True)
            return
        button.disabled = True
        await interaction.response.edit_message(content="Job cancelled.", view=self)

    @discord.ui.button(label="Refresh", custom_id="job:refresh")
    async def refresh(self, interaction: discord.Interaction, button: discord.ui.Button[CancelView]) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(content="Job running (refreshed).")


class FeedbackForm(discord.ui.Modal, title="Feedback"):
    text: discord.ui.TextInput[FeedbackForm] = discord.ui.TextInput(
        label="Your feedback", custom_id="fb:text"
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"Thanks: {self.text.value}", ephemeral=True)


class Quota(app_commands.Group):
    def __init__(self) -> None:
        super().__init__(
            name="quota",
            description="Quotas",
            default_permissions=discord.Permissions(manage_guild=True),
        )

    @app_commands.command(name="set-user", description="Set a member's daily quota")
    @app_commands.describe(member="Who", limit="Requests per day")
    async def set_user(
        self, interaction: discord.Interaction, member: discord.Member, limit: app_commands.Range[int, 0, 100]
    ) -> None:
        if not interaction.permissions.manage_guild:
            await interaction.response.send_message("You need Manage Server.", ephemeral=True)
            return
        await interaction.response.send_message(
            f"{member.display_name}: {limit}/day", allowed_mentions=discord.AllowedMentions.none()
        )


class TinyBot(commands.Bot):
    def __init__(self, **options: Any) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents(guilds=True, voice_states=True),
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        #: /act waits for this before acting, so a test can move the clock first.
        self.go_ahead = asyncio.Event()
        #: What /act ended with: "ok" or the exception discord.py raised.
        self.outcomes: asyncio.Queue[Any] = asyncio.Queue()
        #: Values /ping received, as discord.py parsed them.
        self.seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def setup_hook(self) -> None:
        self.tree.add_command(ping)
        self.tree.add_command(render)
        self.tree.add_command(job)
        self.tree.add_command(act)
        self.tree.add_command(feedback)
        self.tree.add_command(pick)
        self.tree.add_command(Quota())


@app_commands.command(description="Answer with what was received")
@app_commands.describe(text="Some text", level="A level", clip="A file")
async def ping(
    interaction: discord.Interaction[TinyBot],
    text: app_commands.Range[str, 1, 50],
    level: app_commands.Range[float, 0.0, 1.0] = 0.5,
    clip: discord.Attachment | None = None,
) -> None:
    data = None if clip is None else await clip.read()
    await interaction.client.seen.put(
        {
            "text": text,
            "level": level,
            "clip": clip,
            "data": data,
            "app_permissions": interaction.app_permissions,
        }
    )
    await interaction.response.send_message(f"pong {text} {level}")


@app_commands.command(description="Defer, post a file as a follow-up, edit the original")
async def render(interaction: discord.Interaction[TinyBot], size: int = 64) -> None:
    await interaction.response.defer(thinking=True)
    await interaction.edit_original_response(content="working")
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    await interaction.followup.send("here it is", file=discord.File(io.BytesIO(payload), "out.wav"))
    original = await interaction.original_response()
    await original.edit(content="done")


@app_commands.command(description="Start a job with a Cancel button")
async def job(interaction: discord.Interaction[TinyBot]) -> None:
    await interaction.response.send_message("Job running.", view=CancelView(interaction.user.id))


@app_commands.command(description="Open a feedback form")
async def feedback(interaction: discord.Interaction[TinyBot]) -> None:
    await interaction.response.send_modal(FeedbackForm())


@app_commands.command(description="Pick a voice")
@app_commands.describe(voice="A voice name")
async def pick(interaction: discord.Interaction[TinyBot], voice: str) -> None:
    await interaction.response.send_message(f"picked {voice}")


@pick.autocomplete("voice")
async def pick_voice(
    interaction: discord.Interaction[TinyBot], current: str
) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=v, value=v) for v in ("alto", "bass", "tenor") if v.startswith(current)]


@app_commands.command(description="Wait for the test, then do one thing")
@app_commands.describe(action="What to do", size="Upload size", target="Channel to post in")
async def act(
    interaction: discord.Interaction[TinyBot],
    action: str,
    size: int = 0,
    target: discord.TextChannel | None = None,
) -> None:
    bot = interaction.client
    try:
        if action == "defer-then-followup":
            await interaction.response.defer()
        await bot.go_ahead.wait()
        if action == "respond":
            await interaction.response.send_message("late")
        elif action == "defer-then-followup":
            await interaction.followup.send("too late")
        elif action == "upload":
            await interaction.response.send_message(file=discord.File(io.BytesIO(bytes(size)), "big.wav"))
        elif action == "double":
            await interaction.response.send_message("first")
            # A second InteractionResponse has no local "already responded" guard, so the
            # request reaches the server, as two racing handlers' would.
            await discord.InteractionResponse(interaction).send_message("second")
        elif action == "post":
            await interaction.response.defer(ephemeral=True)
            assert target is not None
            await target.send("hello", file=discord.File(io.BytesIO(bytes(size)), "a.bin") if size else None)
        await bot.outcomes.put("ok")
    except Exception as exc:
        await bot.outcomes.put(exc)


class RecordingVoice(discord.VoiceProtocol):
    """Joins through the gateway (op 4) and records the voice events; no UDP."""

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        super().__init__(client, channel)
        self.state_updates: list[dict[str, Any]] = []
        self.server_updates: list[dict[str, Any]] = []
        self.joined = asyncio.Event()
        self.left = asyncio.Event()

    async def on_voice_state_update(self, data: Any, /) -> None:
        self.state_updates.append(data)
        if data["channel_id"] is None:
            self.left.set()

    async def on_voice_server_update(self, data: Any, /) -> None:
        self.server_updates.append(data)
        self.joined.set()

    # The signature is discord.py's VoiceProtocol.connect.
    async def connect(
        self,
        *,
        timeout: float,  # noqa: ASYNC109
        reconnect: bool,
        self_deaf: bool = False,
        self_mute: bool = False,
    ) -> None:
        channel = self.channel
        assert isinstance(channel, discord.VoiceChannel)
        await channel.guild.change_voice_state(channel=channel, self_deaf=self_deaf, self_mute=self_mute)
        async with asyncio.timeout(timeout):
            await self.joined.wait()

    async def disconnect(self, *, force: bool) -> None:
        channel = self.channel
        assert isinstance(channel, discord.VoiceChannel)
        await channel.guild.change_voice_state(channel=None)
        await self.left.wait()
        self.cleanup()
