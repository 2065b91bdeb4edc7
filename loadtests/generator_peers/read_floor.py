"""The floor of a load generator: streams opened by the toolkit's client, then only their bytes
read (one epoll, `recv` until empty), nothing parsed, nothing answered. What any generator
that looks at each notification costs above this is its own work.

    python -m loadtests.generator_peers.read_floor --url URL --tokens FILE --result OUT

It answers no pings: run it against a server whose ping interval is longer than the run.
"""

from __future__ import annotations

import select
import time

from websockets.exceptions import WebSocketException

from loadtests.generator_peers.cli import arguments, stop_event, tokens, write
from notify_client.blocking import BlockingStreamClient


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    stop = stop_event()
    poll = select.epoll()
    held = {}
    failed = closed = 0
    received = 0  # bytes
    start = time.monotonic()
    pending = tokens(args.tokens)
    streams = len(pending)
    due = 0  # the next stream to open
    while not stop.is_set():
        if due < streams and time.monotonic() >= start + due / args.rate:
            due += 1
            try:
                client = BlockingStreamClient.open(args.url, "", pending[due - 1], keep=False)
            except (OSError, WebSocketException, TimeoutError):
                failed += 1
                continue
            sock = client.io.os_socket
            sock.setblocking(False)
            held[sock.fileno()] = client  # kept: closing it would close the socket
            poll.register(sock.fileno(), select.EPOLLIN)
            continue
        for fd, _ in poll.poll(0.01 if due < streams else 0.5):
            sock = held[fd].io.os_socket
            while True:
                try:
                    data = sock.recv(262_144)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    poll.unregister(fd)
                    del held[fd]
                    closed += 1
                    break
                received += len(data)
    write(
        args.result,
        {
            "streams": streams,
            "opened": due - failed,
            "open_at_stop": len(held),
            "failed": failed,
            "bytes": received,
        },
    )


if __name__ == "__main__":
    main()
