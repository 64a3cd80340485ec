"""What several cogs share: moderator alerts (``alerts``) and permission guards (``guards``).

The other shared helpers are in the core, because the core and the CLI use them too (and the
core never imports ``cogs``): formats (money, plural, durations) in ``bot.formats``, the
ephemeral reply in ``bot.app.send_ephemeral``.
"""
