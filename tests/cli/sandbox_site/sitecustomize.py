"""Imported at the start of every Python process that has this folder on its PYTHONPATH (the
CLI tests put it there for ``chatterbox-bot`` subprocesses): with ``SANDBOX_DISCORD_API`` and
``SANDBOX_DISCORD_GATEWAY`` set, discord.py's REST base and gateway URL point at the Discord
sandbox of the test, exactly as ``DiscordSandbox.configure_client`` does in process. Endpoint
configuration only: the bot and discord.py run unmodified."""

import os

_api = os.environ.get("SANDBOX_DISCORD_API")
if _api:
    import discord.gateway
    import discord.http
    import yarl

    discord.http.Route.BASE = _api
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["SANDBOX_DISCORD_GATEWAY"])
