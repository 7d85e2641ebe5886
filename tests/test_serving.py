"""The acceptor takes every pending connection in one loop turn (libuv under uvloop takes one a turn), bounded, and
pauses instead of spinning when accepting fails. Counts only, no timing."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import ClassVar

import pytest

from jakinib.web import serving

LOOPS = [pytest.param(asyncio.new_event_loop, id="asyncio")]
try:
    import uvloop

    LOOPS.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
except ImportError:  # pragma: no cover - uvloop is not on Windows
    pass


class Recording(asyncio.Protocol):
    made: ClassVar[list[asyncio.BaseTransport]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Recording.made.append(transport)


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def _run(loop_factory, coro):
    loop = loop_factory()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_every_pending_connection_is_accepted_in_one_turn(loop_factory):
    Recording.made = []
    sock = _listener()

    async def main() -> tuple[int, int]:
        acceptor = serving._Acceptor(asyncio.get_running_loop(), sock, Recording, backlog=64)
        clients = [socket.create_connection(sock.getsockname()) for _ in range(20)]  # queued in the kernel
        acceptor.accept()  # what one readable event does
        accepted = len(acceptor.setting_up)
        while acceptor.setting_up:
            await asyncio.sleep(0)
        for t in Recording.made:
            t.close()
        for c in clients:
            c.close()
        acceptor.close()
        return accepted, len(Recording.made)

    assert _run(loop_factory, main()) == (20, 20)
    assert sock.fileno() == -1  # closed with the acceptor


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_a_turn_accepts_at_most_accept_per_turn(loop_factory, monkeypatch):
    monkeypatch.setattr(serving, "ACCEPT_PER_TURN", 5)
    Recording.made = []
    sock = _listener()

    async def main() -> list[int]:
        acceptor = serving._Acceptor(asyncio.get_running_loop(), sock, Recording, backlog=64)
        clients = [socket.create_connection(sock.getsockname()) for _ in range(8)]
        counts = []
        for _ in range(2):
            before = len(Recording.made) + len(acceptor.setting_up)
            acceptor.accept()
            counts.append(len(Recording.made) + len(acceptor.setting_up) - before)
        while acceptor.setting_up:
            await asyncio.sleep(0)
        for t in Recording.made:
            t.close()
        for c in clients:
            c.close()
        acceptor.close()
        return counts

    assert _run(loop_factory, main()) == [5, 3]


class _Failing:
    """A listening socket whose accept fails as when the process is out of file descriptors."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def accept(self):
        raise OSError(errno.EMFILE, "Too many open files")


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_an_accept_error_pauses_accepting_instead_of_spinning(loop_factory):
    real = _listener()

    async def main() -> list[bool]:
        acceptor = serving._Acceptor(asyncio.get_running_loop(), _Failing(real), Recording, backlog=8)
        states = [acceptor.reading]
        acceptor.accept()
        states.append(acceptor.reading)  # paused: the loop does not call accept again at once
        acceptor._resume()  # what the timer does after RETRY_AFTER_S
        states.append(acceptor.reading)
        acceptor.close()
        return states

    assert _run(loop_factory, main()) == [True, False, True]
