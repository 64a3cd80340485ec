"""``CuttablePath``: a loopback TCP relay to a database server that a test can cut and mend.

A real network fault, not a fake database: the bot's engine connects to the relay, the relay
to the server. ``cut()`` aborts every relayed connection and from then on drops each new one
as soon as it is accepted (the driver sees the connection reset, as when a server restarts);
``mend()`` lets new connections through again. Both are synchronous and take effect at once,
so a test can end an outage at an exact moment of the bot's own (e.g. from a logging handler
that sees the bot give up on the database), with no sleeps and no timing guesses.
"""

from __future__ import annotations

import asyncio
import contextlib


class CuttablePath:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.cut_now = False
        self.dropped = 0  # connections refused while cut
        self.port = 0

    async def __aenter__(self) -> CuttablePath:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self.cut_now = True
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    def mend(self) -> None:
        self.cut_now = False

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_now:
            self.dropped += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            for side in (writer, up_writer):
                self._open.discard(side)
                side.transport.abort()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()  # one side ended: end the other (a cut aborts both)
