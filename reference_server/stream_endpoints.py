"""The two WebSocket endpoints (docs/contract.md sections 2 to 5 and 11): origin, accept, token,
the per-user limit, then the client's frames until the peer leaves; and `StreamsFirst`, which
routes them past FastAPI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, WebSocket
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnect

from reference_server.auth import AuthError, Principal, token_from_request
from reference_server.hub import Connection, FrameWrite
from reference_server.protocol import (
    LAST_ID_PARAM,
    PREPARED_FRAMES,
    WS_4401_UNAUTHORIZED,
    WS_4404_NOT_FOUND,
    WS_4429_TOO_MANY_CONNECTIONS,
    WS_NOTIFICATIONS_PATH,
    WS_TASKS_PATH,
    CloseCode,
    FrameType,
    parse_client_text,
    pong,
)
from reference_server.ratelimit import FrameRate
from reference_server.services import Services
from reference_server.streams import open_task_stream, open_user_stream

log = logging.getLogger("reference_server")

Refusal = tuple[int, str]
WS_1011_INTERNAL_ERROR = 1011


class StreamEndpoints:
    """The notification and task streams of one process."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.cfg = services.settings

    def origin_allowed(self, ws: WebSocket) -> bool:
        allowed = self.cfg.ws_allowed_origins
        origin = ws.headers.get("origin")
        return not allowed or origin is None or origin in allowed

    async def accept(self, ws: WebSocket) -> Principal | None:
        """Origin check (refused before accept), accept, 1001 if shutting down, then the
        token (4401 after accept)."""
        if not self.origin_allowed(ws):
            await ws.close()  # before accept: the server answers HTTP 403
            return None
        await ws.accept()
        if self.services.stopping.is_set():
            # Between SIGTERM and uvicorn closing its listener: a stream opened now would be
            # dropped in a moment; the client backs off and finds another server (5.9, 7.4).
            await ws.close(CloseCode.GOING_AWAY, "server shutting down")
            return None
        try:
            return self.services.verifier.verify(token_from_request(ws.query_params, ws.headers))
        except AuthError as exc:
            await ws.close(WS_4401_UNAUTHORIZED, str(exc))
            return None

    async def serve_client(self, ws: WebSocket, conn: Connection, user: Principal) -> None:
        """Answer client frames until the peer leaves (docs/contract.md sections 4, 5 and 11)."""
        loop = asyncio.get_running_loop()
        expiry = loop.call_later(
            max(0.0, user.expires_at - time.time()),
            conn.close,
            WS_4401_UNAUTHORIZED,
            "token expired",
        )
        rate = FrameRate(self.cfg.ws_client_rate)
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if conn.closed:
                    continue
                if not rate.allow(loop.time()):
                    conn.close(CloseCode.POLICY_VIOLATION, "too many frames")
                    continue
                text = message.get("text")
                if text is None:
                    conn.close(CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")
                    continue
                frame = parse_client_text(text)
                conn.push(pong() if frame.type is FrameType.PING else str(frame.reply_error))
        finally:
            expiry.cancel()

    async def hold(
        self, ws: WebSocket, conn: Connection, user: Principal, refusal: Refusal | None
    ) -> None:
        """Close with the refusal, or answer client frames until the peer leaves."""
        if refusal is not None:
            await ws.close(*refusal)
        else:
            await self.serve_client(ws, conn, user)

    async def guarded(self, ws: WebSocket, conn: Connection, run: Awaitable[None]) -> None:
        """Run a stream's life; a lost Redis closes it with 1011, and the hub always forgets it."""
        try:
            await run
        except RedisError as exc:
            log.warning("redis error on a stream: %s", type(exc).__name__)
            with contextlib.suppress(Exception):
                await ws.close(WS_1011_INTERNAL_ERROR, "backend unavailable")
        except WebSocketDisconnect:
            pass
        finally:
            conn.forget()

    async def open_notifications(self, ws: WebSocket, conn: Connection) -> Refusal | None:
        bus = self.services.bus
        full = (WS_4429_TOO_MANY_CONNECTIONS, "too many connections")
        if not await bus.acquire_slot(conn.user_id):
            return full
        opened = False
        try:
            last_id = ws.query_params.get(LAST_ID_PARAM)
            opened = await open_user_stream(self.services.hub, bus, conn, last_id)
        finally:
            if not opened:
                bus.release_slot(conn.user_id)
        return None if opened else full

    async def open_task(self, conn: Connection, user: Principal) -> Refusal | None:
        s = self.services
        code = await open_task_stream(s.hub, s.bus, conn, conn.key, is_admin=user.is_admin)
        if code is None:
            return None
        return code, "unknown task" if code == WS_4404_NOT_FOUND else "not your task"

    def connection(self, ws: WebSocket, key: str, user: Principal) -> Connection:
        """The hub's side of an accepted stream, with the transport's frame writer if offered."""
        write: FrameWrite | None = None
        if self.cfg.ws_prepared_frames:
            write = ws.scope.get("extensions", {}).get(PREPARED_FRAMES, {}).get("write")
        queue = self.cfg.ws_send_queue
        return Connection(key, user.user_id, ws.send_text, ws.close, queue, write=write)

    async def notifications(self, ws: WebSocket) -> None:
        user = await self.accept(ws)
        if user is None:
            return
        conn = self.connection(ws, user.user_id, user)

        async def run() -> None:
            await self.hold(ws, conn, user, await self.open_notifications(ws, conn))

        await self.guarded(ws, conn, run())

    async def task(self, ws: WebSocket, task_id: str) -> None:
        user = await self.accept(ws)
        if user is None:
            return
        conn = self.connection(ws, task_id, user)

        async def run() -> None:
            await self.hold(ws, conn, user, await self.open_task(conn, user))

        await self.guarded(ws, conn, run())


StreamHandler = Callable[[WebSocket], Awaitable[None]]
TaskStreamHandler = Callable[[WebSocket, str], Awaitable[None]]
TASKS_PREFIX = WS_TASKS_PATH.split("{", 1)[0]


class StreamsFirst:
    """The ASGI app: the two stream endpoints straight to their handlers, the rest to FastAPI.

    Through FastAPI, each open stream keeps its whole middleware, routing and dependency stack
    suspended for the stream's life; straight here it keeps only its handler's frames (README:
    memory per stream).
    """

    def __init__(self, app: FastAPI, streams: StreamEndpoints) -> None:
        self.app = app
        self.streams = streams

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            path = scope["path"]
            if path == WS_NOTIFICATIONS_PATH:
                return await self.streams.notifications(WebSocket(scope, receive, send))
            task_id = path.removeprefix(TASKS_PREFIX)
            if task_id != path and task_id and "/" not in task_id:
                return await self.streams.task(WebSocket(scope, receive, send), task_id)
        await self.app(scope, receive, send)
