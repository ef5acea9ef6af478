"""A TCP proxy on 127.0.0.1 in front of a Unix socket (pgserver's PostgreSQL), that a test can
partition: :meth:`PartitionProxy.hold` stops forwarding in both directions (bytes wait in the
proxy, new connections are accepted but not connected through) — a network partition, where
nothing fails, nothing arrives —, :meth:`PartitionProxy.heal` forwards everything held."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path


class PartitionProxy:
    def __init__(self, target: Path) -> None:
        self.target = target
        self.port = 0
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> PartitionProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._open.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()

    def url(self, direct_url: str) -> str:
        """``direct_url`` (pgserver's, over the socket) rewritten to go through this proxy."""
        from urllib.parse import urlsplit

        database = urlsplit(direct_url).path.lstrip("/")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def hold(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.add(client_w)
        try:
            await self._open.wait()
            server_r, server_w = await asyncio.open_unix_connection(str(self.target))
        except OSError:
            client_w.close()
            return
        self._writers.add(server_w)
        await asyncio.gather(
            self._pipe(client_r, server_w), self._pipe(server_r, client_w), return_exceptions=True
        )
        for writer in (client_w, server_w):
            writer.close()
            self._writers.discard(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._open.wait()  # held: the bytes wait here, nothing is lost
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.write_eof()
