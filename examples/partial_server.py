"""A second, partial notification server on another stack: python-websockets' asyncio server.

It keeps part of the contract only: notification streams with tokens (query or header), the
`connected` first frame, heartbeats, ping/pong, error frames, 1003/1009, the per-user limit and
fan-out and broadcast. It has no SSE, no tasks, no stats, no archive, no resume with `last_id`,
no rate limit and no slow-consumer close; publishing is not an HTTP API but a WebSocket at
`/admin/publish` that takes the driver's JSON (see `partial_publish.py`, the `--driver-cmd`).

    JWT_SECRET=... python -m examples.partial_server --port 8765 [--heartbeat-interval 30]

The toolkit checks it through `examples/partial.toml`; README "Testing your own server".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

PER_USER = 3
MAX_FRAME = 65536
streams: dict[str, set[ServerConnection]] = defaultdict(set)
ids = itertools.count(1)


def now() -> str:
    return datetime.now(UTC).isoformat()


def frame(kind: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "data": data})


def claims_of(ws: ServerConnection, secret: str) -> dict[str, Any] | None:
    """The token's claims (query `token` or `Authorization: Bearer`), or None if it is bad."""
    assert ws.request is not None
    query = parse_qs(urlsplit(ws.request.path).query)
    given = query.get("token")
    token = given[0] if given else None
    header = ws.request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        token = token or header[7:].strip()
    if not token:
        return None
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims.get("sub"), str) else None


async def notifications(ws: ServerConnection, user: str, beat: float) -> None:
    if len(streams[user]) >= PER_USER:
        await ws.close(4429, "too many connections")
        return
    streams[user].add(ws)
    try:
        await ws.send(frame("connected", {"user_id": user, "timestamp": now()}))
        beats = asyncio.create_task(heartbeats(ws, beat))
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    await ws.close(1003, "binary frames are not accepted")
                    return
                await ws.send(answer(message))
        finally:
            beats.cancel()
    except ConnectionClosed:
        pass
    finally:
        streams[user].discard(ws)


def answer(text: str) -> str:
    try:
        kind = json.loads(text).get("type")
    except (ValueError, AttributeError, RecursionError):
        return frame("error", {"code": "bad_json", "message": "not JSON"})
    if kind == "ping":
        return frame("pong", {"timestamp": now()})
    return frame("error", {"code": "unknown_type", "message": "unknown frame type"})


async def heartbeats(ws: ServerConnection, beat: float) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.sleep(beat)
            await ws.send(frame("heartbeat", {"timestamp": now()}))


async def publisher(ws: ServerConnection) -> None:
    """The driver's channel: each message is `{"action": "publish" | "broadcast", ...}`."""
    async for message in ws:
        request = json.loads(message)
        action = request.pop("action", None)
        if action not in ("publish", "broadcast"):
            await ws.send(json.dumps({"error": f"unsupported action {action!r}"}))
            continue
        target = request.pop("user_id", None)
        request.pop("broadcast", None)
        note = {
            "id": f"n{next(ids)}",
            "content": "",
            "link": "",
            "source": "example",
            **request,
            "created_at": now(),
            "status": "unread",
        }
        note.setdefault("type", "system")
        text = frame("notification", note)
        if action == "broadcast":
            broadcast([s for group in streams.values() for s in group], text)
        else:
            broadcast(streams.get(str(target), set()), text)
        await ws.send(json.dumps(note))


async def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--heartbeat-interval", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=1, help="accepted for the harness; only 1")
    args = p.parse_args(argv)
    secret = os.environ.get("JWT_SECRET")
    if not secret:
        print("partial_server: JWT_SECRET is required", file=sys.stderr)
        return 2

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        path = urlsplit(ws.request.path).path
        claims = claims_of(ws, secret)
        if claims is None:
            await ws.close(4401, "invalid token")
        elif path == "/api/ws/notifications":
            await notifications(ws, claims["sub"], args.heartbeat_interval)
        elif path == "/admin/publish" and claims.get("role") == "admin":
            await publisher(ws)
        else:
            await ws.close(4404, "no such stream")

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(handler, args.host, args.port, max_size=MAX_FRAME, compression=None):
        print(f"partial_server: ws://{args.host}:{args.port}", flush=True)
        await stop
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
