"""Many notification streams held by one locust user: one epoll over their sockets and no
greenlet per stream.

One greenlet per stream (`IdleUser`) costs a stack, a timer per read and a switch per frame:
about 50 KB and 115-142 µs of generator CPU per frame received in the 10k runs. Here a stream is
its socket, websockets' sans-I/O protocol and its contract session (`WsStream`); a frame costs
one readiness event, one `recv` and the parsing. Handshakes still run in greenlets (a bounded
pool), since they are few and short; reconnects by the contract's policy go through the same
pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import gevent
from gevent.hub import get_hub
from gevent.monkey import get_original
from gevent.pool import Pool

from loadtests.locust_client import WsStream
from notify_client.client import Closed, ProtocolViolation

# gevent's monkey-patched `select` has no epoll; the original one is pollable itself, so the
# herd's greenlet waits on it through gevent and the rest of the worker runs meanwhile.
_epoll = get_original("select", "epoll")
_EPOLLIN: int = get_original("select", "EPOLLIN")

BATCH = 512  # ready sockets served between two yields to the rest of the worker
HANDSHAKES = 200  # handshakes in flight at once


class Herd:
    """Opens `streams` at `rate` a second, then reads every frame they get until killed."""

    def __init__(
        self,
        streams: Sequence[WsStream],
        rate: float,
        *,
        handshakes: int = HANDSHAKES,
        on_change: Callable[[Herd], None] | None = None,
    ) -> None:
        """`on_change` is called whenever a stream opens or drops (a test's way to wait)."""
        if rate <= 0:
            raise ValueError(f"rate must be > 0 streams a second, not {rate}")
        self.streams = list(streams)
        self.rate = rate
        self.poll = _epoll()
        self.by_fd: dict[int, WsStream] = {}
        self.opening = Pool(handshakes)
        self.closed = False
        self.on_change = on_change

    @property
    def open_streams(self) -> int:
        return len(self.by_fd)

    def run(self) -> None:
        """Open every stream, then serve them; returns only when killed (GreenletExit)."""
        opener = gevent.spawn(self._open_all)
        try:
            self._serve()
        finally:
            opener.kill()
            self.opening.kill()

    def close(self) -> None:
        """Close every stream (a close frame where it is open) and the epoll."""
        self.closed = True  # a reconnect due later does nothing
        for stream in self.streams:
            stream.close()
        self.by_fd.clear()
        self.poll.close()

    def _open_all(self) -> None:
        start = time.monotonic()
        for i, stream in enumerate(self.streams):
            gevent.sleep(max(0.0, start + i / self.rate - time.monotonic()))
            self.opening.spawn(self._open, stream)

    def _open(self, stream: WsStream) -> None:
        if self.closed:
            return
        if not stream.connect():
            self._again(stream, None)
            return
        assert stream.stream is not None
        if self.closed:  # closed while this handshake ran
            stream.close()
            return
        fd = stream.stream.io.sock.fileno()
        self.by_fd[fd] = stream
        self.poll.register(fd, _EPOLLIN)
        self._changed()
        self._serve_one(fd, stream, pump=False)  # frames that came with `connected`

    def _serve(self) -> None:
        # One watcher for the whole run: `gevent.socket.wait_read` would make one per wait,
        # each an epoll_ctl that libev turns into several (25% of a core for 5,000 idle streams).
        hub = get_hub()
        readable = hub.loop.io(self.poll.fileno(), 1)
        while True:
            hub.wait(readable)
            for fd, _ in self.poll.poll(0, BATCH):
                stream = self.by_fd.get(fd)
                if stream is not None:
                    self._serve_one(fd, stream)
            gevent.sleep(0)  # locust's heartbeats and the handshakes run between batches

    def _serve_one(self, fd: int, stream: WsStream, *, pump: bool = True) -> None:
        try:
            stream.read_ready(pump=pump)
        except Closed as closed:
            self._forget(fd)
            self._again(stream, stream.ended(closed))
        except ProtocolViolation as exc:
            self._forget(fd)
            stream.violated(exc)
            self._again(stream, None)

    def _forget(self, fd: int) -> None:
        del self.by_fd[fd]
        self.poll.unregister(fd)
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def _again(self, stream: WsStream, code: int | None) -> None:
        """Reconnect when the contract's policy says, through the handshake pool."""
        due = stream.next_attempt(code)
        if due is None:  # the contract says not to (4401, 4403, 4404): its close was reported
            return
        delay = max(0.0, due - time.monotonic())
        gevent.spawn_later(delay, self.opening.spawn, self._open, stream)
