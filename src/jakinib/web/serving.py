"""Run the app under Uvicorn with an acceptor that takes every pending connection in one event-loop turn.

libuv (under uvloop) accepts one connection per loop turn (libuv/libuv#3696, "unix: don't accept() connections
in a loop"). When each turn also checks CDS calls, a burst of new connections (an EHR opening more when answers
slow down) waits one turn per connection in the listen queue: 200 ms to 2 s on loopback at 800 calls/s,
refusals included, while calls on open connections were answered in 30 ms. Here the listening socket is read by
``loop.add_reader``: each turn accepts up to ``ACCEPT_PER_TURN`` connections and hands them to Uvicorn's own
HTTP protocol (``loop.connect_accepted_socket``), so a new connection waits no longer than an open one.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import socket
import sys
from typing import Any

import uvicorn

log = logging.getLogger("jakinib.web")
ACCEPT_PER_TURN = 128  # bounded, so a flood of connections cannot hold the loop for a whole turn
RETRY_AFTER_S = 0.1  # after an accept error that repeats (out of file descriptors): pause accepting this long


class Server(uvicorn.Server):
    """``uvicorn.Server`` serving ``sock`` through ``_Acceptor`` (the listen socket itself is not given to Uvicorn)."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        super().__init__(config)
        self.sock = sock
        self.acceptor: _Acceptor | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the lifespan (warm-up) and server state, no listener of Uvicorn's
        if self.should_exit:
            return
        c = self.config
        factory = functools.partial(c.http_protocol_class, config=c, server_state=self.server_state,
                                    app_state=self.lifespan.state)
        self.acceptor = _Acceptor(asyncio.get_running_loop(), self.sock, factory, c.backlog)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.acceptor is not None:
            self.acceptor.close()  # stop accepting first, as Uvicorn closes its servers first
        await super().shutdown(sockets=None)


class _Acceptor:
    """Accept on ``sock`` whenever it is readable, up to ``ACCEPT_PER_TURN`` connections a turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, factory: Any, backlog: int) -> None:
        self.loop, self.sock, self.factory = loop, sock, factory
        self.setting_up: set[asyncio.Task[Any]] = set()
        sock.listen(backlog)
        sock.setblocking(False)
        self.reading = False
        self._resume()

    def accept(self) -> None:
        for _ in range(ACCEPT_PER_TURN):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:  # EMFILE and the like: the socket stays readable, so pause rather than spin
                log.error("accepting connections: %s; retrying in %.1f s", errno.errorcode.get(exc.errno or 0, exc), RETRY_AFTER_S)
                self._pause()
                self.loop.call_later(RETRY_AFTER_S, self._resume)
                return
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self.loop.create_task(self.loop.connect_accepted_socket(self.factory, conn))
            self.setting_up.add(task)
            task.add_done_callback(self._set_up)

    def _set_up(self, task: asyncio.Task[Any]) -> None:
        self.setting_up.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the peer left before the transport was made
            log.debug("connection set-up failed: %s", type(task.exception()).__name__)

    def _resume(self) -> None:
        if not self.reading and self.sock.fileno() != -1:
            self.loop.add_reader(self.sock.fileno(), self.accept)
            self.reading = True

    def _pause(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.sock.fileno())
            self.reading = False

    def close(self) -> None:
        if self.sock.fileno() != -1:
            self._pause()
            self.sock.close()


def serve(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` on the bound socket ``sock`` until interrupted (Uvicorn: uvloop and httptools when installed)."""
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    if sys.platform == "win32":  # the Proactor loop has no add_reader: Uvicorn's own accept
        uvicorn.Server(config).run(sockets=[sock])
        return
    Server(config, sock).run()
