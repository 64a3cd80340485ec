"""What several cogs share: moderator alerts, permission guards, formats and replies."""
