"""The floor of `nox -s peers`: accept streams, then write one pre-built frame to each socket.

What no notification server can go below on this machine: per delivered frame, one
`transport.write` of bytes framed once, and the kernel's `send()`. It keeps only what the
generator needs to count: the handshake (websockets' sans-I/O protocol, so pings are answered),
the token's `sub`, the `connected` first frame, and publishing over the `/admin/publish`
WebSocket of `examples/partial_server.py`, so `examples.partial_publish` drives both. No
heartbeats, no limits, no history, no backpressure.

    JWT_SECRET=... python -m loadtests.floor_server --port 8766
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from notify_contract.protocol import WS_NOTIFICATIONS_PATH

PUBLISH_PATH = "/admin/publish"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _text(kind: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "data": data}, separators=(",", ":")).encode()


class Floor:
    """Every open stream's transport, by user."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.streams: dict[str, set[asyncio.Transport]] = {}
        self.ids = itertools.count(1)

    def subject(self, request: Request) -> tuple[str, bool] | None:
        """The token's `sub` and whether it is an admin's, or None."""
        token = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return None
        sub = claims.get("sub")
        return (sub, claims.get("role") == "admin") if isinstance(sub, str) else None

    def publish(self, request: dict[str, Any]) -> dict[str, Any]:
        """Frame the notification once and write it to every stream it is for."""
        action = request.pop("action", None)
        target = request.pop("user_id", None)
        request.pop("broadcast", None)
        note = {"id": f"f{next(self.ids)}", **request, "created_at": _now(), "status": "unread"}
        frame = Frame(Opcode.TEXT, _text("notification", note)).serialize(mask=False, extensions=[])
        if action == "broadcast":
            groups = list(self.streams.values())
        else:
            groups = [self.streams.get(str(target), set())]
        for group in groups:
            for transport in group:
                transport.write(frame)
        return note


class FloorProtocol(asyncio.Protocol):
    """One connection: the handshake by websockets' sans-I/O protocol, then nothing but the
    frames of the floor (and the protocol's own answers: pongs, the closing handshake)."""

    def __init__(self, floor: Floor) -> None:
        self.floor = floor
        self.ws = ServerProtocol()
        self.transport: asyncio.Transport | None = None
        self.user: str | None = None
        self.publisher = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Request):
                self.handshake(event)
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT and self.publisher:
                note = self.floor.publish(json.loads(bytes(event.data)))
                self.ws.send_text(json.dumps(note).encode())
        self.flush()

    def handshake(self, request: Request) -> None:
        path = urlsplit(request.path).path
        who = self.floor.subject(request)
        if who is None or path not in (WS_NOTIFICATIONS_PATH, PUBLISH_PATH):
            self.ws.send_response(self.ws.reject(403, "not a stream of the floor\n"))
            return
        response = self.ws.accept(request)
        self.ws.send_response(response)
        if response.status_code != 101:
            return
        user, admin = who
        if path == PUBLISH_PATH:
            self.publisher = admin
            return
        self.ws.send_text(_text("connected", {"user_id": user, "timestamp": _now()}))
        assert self.transport is not None
        self.user = user
        self.floor.streams.setdefault(user, set()).add(self.transport)

    def flush(self) -> None:
        assert self.transport is not None
        out = self.ws.data_to_send()
        if out:
            self.transport.write(b"".join(out))
        # websockets ends what it sends with b"" when the connection is to be closed.
        if (out and out[-1] == b"") or self.ws.close_expected():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.user is not None and self.transport is not None:
            group = self.floor.streams.get(self.user)
            if group is not None:
                group.discard(self.transport)
                if not group:
                    del self.floor.streams[self.user]


async def serve(host: str, port: int, secret: str) -> None:
    loop = asyncio.get_running_loop()
    floor = Floor(secret)
    server = await loop.create_server(lambda: FloorProtocol(floor), host, port, backlog=4096)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    print(f"floor_server: ws://{host}:{port}", flush=True)
    async with server:
        await stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.floor_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--workers", type=int, default=1, help="accepted for the harness; only 1")
    args = parser.parse_args(argv)
    secret = os.environ.get("JWT_SECRET")
    if not secret:
        print("floor_server: JWT_SECRET is required", file=sys.stderr)
        return 2
    asyncio.run(serve(args.host, args.port, secret))
    return 0


if __name__ == "__main__":
    sys.exit(main())
