"""A TCP proxy in front of PostgreSQL that a test can cut and restore, to play a database outage
against any server (embedded, container or TEST_DATABASE_URL) without stopping it for everyone."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import make_url


class TcpProxy:
    def __init__(self, upstream_url: str) -> None:
        url = make_url(upstream_url)
        socket_dir = url.query.get("host")
        port = url.port or 5432
        self._unix_path = f"{socket_dir}/.s.PGSQL.{port}" if isinstance(socket_dir, str) else None
        self._upstream = (url.host or "127.0.0.1", port)
        self._url = url
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.cut_off = False

    @property
    def url(self) -> str:
        query = {k: v for k, v in self._url.query.items() if k != "host"}
        return self._url.set(host="127.0.0.1", port=self.port, query=query).render_as_string(hide_password=False)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones, as a dead database would."""
        self.cut_off = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.cut_off = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.transport.abort()
            return
        try:
            if self._unix_path:
                up_reader, up_writer = await asyncio.open_unix_connection(self._unix_path)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self._writers.discard(writer)
