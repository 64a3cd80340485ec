"""Discord integration tests: the real bot, the Discord sandbox, the gateway emulator, SQLite."""
