"""Voice-chat clips and the fair per-guild queue (no discord import; the player is in
``cogs.voice.player``)."""
