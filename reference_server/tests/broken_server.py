"""Deliberately broken variants of the reference server: the contract suite must catch each.

    BROKEN_FAULT=leak python -m reference_server.tests.broken_server --port 8000
    BROKEN_FAULT=wrong-user,slow-4409 ...   # several at once

Each fault patches one behaviour in this process, then runs the reference server as usual.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import os
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

import jwt
from starlette.websockets import WebSocket, WebSocketDisconnect

import reference_server.app
import reference_server.bus
import reference_server.hub
import reference_server.lifecycle
import reference_server.redis_bus
import reference_server.routes
import reference_server.sse
import reference_server.stream_endpoints
import reference_server.streams
from reference_server import __main__ as server_main
from reference_server import bodies, guard, logs, protocol, records
from reference_server.auth import AuthError, Principal, TokenVerifier, token_from_request
from reference_server.bus import MemoryBus
from reference_server.hub import Hub
from reference_server.protocol import WS_4429_TOO_MANY_CONNECTIONS, FrameType, Outgoing
from reference_server.records import record_body
from reference_server.redis_bus import RedisBus
from reference_server.redis_scripts import BROADCAST_CHANNEL, BROADCAST_COUNT_KEY, BROADCAST_KEY
from reference_server.settings import load_settings


def leak() -> None:
    """A user's notification reaches every user's streams."""
    original = Hub.to_user_locked

    def to_user_locked(self: Hub, user_id: str, item: Outgoing) -> None:
        for user in self.users():
            original(self, user, item)

    Hub.to_user_locked = to_user_locked  # type: ignore[method-assign]


def no_limit() -> None:
    """The per-user limit is not enforced."""
    original = Hub.__init__

    def init(self: Hub, max_per_user: int, *args: Any, **kwargs: Any) -> None:
        original(self, 10**9, *args, **kwargs)

    Hub.__init__ = init  # type: ignore[method-assign]


def frame_shape() -> None:
    """Notifications go out as {"type", "payload"} instead of {"type", "data"}."""
    original = protocol.encode

    def encode(frame_type: FrameType, data: dict[str, Any]) -> str:
        if frame_type is FrameType.NOTIFICATION:
            return json.dumps({"type": "notification", "payload": data})
        return original(frame_type, data)

    protocol.encode = encode


def no_heartbeat() -> None:
    """No heartbeat frames."""

    async def silent(hub: Hub, interval: float) -> None:
        await asyncio.Event().wait()

    reference_server.lifecycle.heartbeats = silent


def slow_heartbeat() -> None:
    """Heartbeats every 1.25 intervals: a server 25% slow (rule 5.1's tolerance is 10%)."""
    original = reference_server.lifecycle.heartbeats

    async def slow(hub: Hub, interval: float) -> None:
        await original(hub, interval * 1.25)

    reference_server.lifecycle.heartbeats = slow


def task_no_heartbeat() -> None:
    """Heartbeats reach notification streams only, not task streams (rule 5.1: every stream)."""

    async def heartbeat(self: Hub, item: Outgoing) -> None:
        users: dict[str, dict[Any, None]] = self._users
        await self._each([c for group in users.values() for c in group], lambda c: c.deliver(item))

    Hub.heartbeat = heartbeat  # type: ignore[method-assign]


def ended_task_open() -> None:
    """Anyone may open the stream of a task that has ended: the owner check skipped for it."""
    original = reference_server.streams.open_task_stream

    async def open_task_stream(
        hub: Hub, bus: Any, conn: Any, task_id: str, *, is_admin: bool
    ) -> int | None:
        info = await bus.task_info(task_id)
        ended = info is not None and info.latest is not None and info.latest.terminal
        return await original(hub, bus, conn, task_id, is_admin=is_admin or ended)

    setattr(reference_server.stream_endpoints, "open_task_stream", open_task_stream)  # noqa: B010
    setattr(reference_server.sse, "open_task_stream", open_task_stream)  # noqa: B010


def broadcast_one_per_user() -> None:
    """A broadcast reaches one stream of each user, not each of a user's streams."""

    async def to_everyone_locked(self: Hub, item: Outgoing) -> None:
        users: dict[str, dict[Any, None]] = self._users
        firsts = [next(iter(group)) for group in users.values() if group]
        await self._each(firsts, lambda c: c.offer(item))

    Hub.to_everyone_locked = to_everyone_locked  # type: ignore[method-assign]


def broadcast_skips_first() -> None:
    """A broadcast skips every user named `...-0`: the load generator names its workers' first
    streams so (`load-w0-0`, `load-w1-0`), so one stream of each worker loses every broadcast."""

    async def to_everyone_locked(self: Hub, item: Outgoing) -> None:
        users: dict[str, dict[Any, None]] = self._users
        kept = [c for user, group in users.items() if not user.endswith("-0") for c in group]
        await self._each(kept, lambda c: c.offer(item))

    Hub.to_everyone_locked = to_everyone_locked  # type: ignore[method-assign]


def broadcast_first_partition() -> None:
    """On several Redis instances a broadcast is published on the first one only: users whose
    notifications live on another never get it."""
    original = RedisBus.publish

    async def publish(self: RedisBus, user_id: str | None, fields: dict[str, Any]) -> Any:
        if user_id is not None or len(self.partitions) == 1:
            return await original(self, user_id, fields)
        body = json.dumps(record_body(fields), separators=(",", ":"))
        n = await self.partitions[0].redis.incr(BROADCAST_COUNT_KEY)
        first = self.partitions[0]
        stored = await first.publish(BROADCAST_KEY, BROADCAST_CHANNEL, body, f"first-{n}")
        return stored.record

    RedisBus.publish = publish  # type: ignore[method-assign]


def resume_skips_broadcasts() -> None:
    """A resumed stream is replayed its own notifications only, not the broadcasts it missed."""
    original = records.select_replay

    def select_replay(personal: Any, broadcast: Any, last_id: str, size: int) -> Any:
        return original(personal, [], last_id, size)

    setattr(reference_server.bus, "select_replay", select_replay)  # noqa: B010
    setattr(reference_server.redis_bus, "select_replay", select_replay)  # noqa: B010


def any_role_admin() -> None:
    """Any `role` claim makes a token an admin's, not exactly `"role": "admin"`."""
    original = TokenVerifier.verify

    def verify(self: TokenVerifier, token: str | None) -> Principal:
        principal = original(self, token)
        claims = jwt.decode(token or "", options={"verify_signature": False})
        return dataclasses.replace(principal, is_admin=principal.is_admin or "role" in claims)

    TokenVerifier.verify = verify  # type: ignore[method-assign]


def http_ignores_exp() -> None:
    """HTTP endpoints take expired tokens: an expired Bearer token is re-signed unexpired before
    the app sees it (streams still check `exp`)."""
    secret, algorithm = os.environ["JWT_SECRET"], os.environ.get("JWT_ALGORITHM", "HS256")

    def renewed(token: str) -> str:
        try:
            jwt.decode(token, secret, algorithms=[algorithm])
        except jwt.ExpiredSignatureError:
            claims = jwt.decode(
                token, secret, algorithms=[algorithm], options={"verify_exp": False}
            )
            return jwt.encode({**claims, "exp": int(time.time()) + 60}, secret, algorithm)
        except jwt.PyJWTError:
            pass
        return token

    def rewrite(scope: dict[str, Any]) -> dict[str, Any]:
        headers = [
            (name, b"Bearer " + renewed(value[7:].decode()).encode())
            if name == b"authorization" and value.lower().startswith(b"bearer ")
            else (name, value)
            for name, value in scope["headers"]
        ]
        return {**scope, "headers": headers}

    _wrap_http(rewrite)


def log_token_on_refusal() -> None:
    """A stream refused with 4429 is logged with its query as a dict, token and all: the log
    filter's `token=` match does not see `'token': '...'`."""
    original = WebSocket.close

    async def close(self: WebSocket, code: int = 1000, reason: str | None = None) -> None:
        if code == WS_4429_TOO_MANY_CONNECTIONS:
            refused = dict(self.query_params)
            logging.getLogger("reference_server").info("stream refused (4429): %s", refused)
        await original(self, code, reason)

    WebSocket.close = close  # type: ignore[method-assign,assignment]


def heartbeat_doubled() -> None:
    """Heartbeats twice an interval."""
    original = reference_server.lifecycle.heartbeats

    async def doubled(hub: Hub, interval: float) -> None:
        await original(hub, interval / 2)

    reference_server.lifecycle.heartbeats = doubled


def limit_off_by_one() -> None:
    """The per-user limit lets one stream more through."""
    original = Hub.__init__

    def init(self: Hub, max_per_user: int, *args: Any, **kwargs: Any) -> None:
        original(self, max_per_user + 1, *args, **kwargs)

    Hub.__init__ = init  # type: ignore[method-assign]


def _replay_from(offset: int) -> None:
    """Resume replays from `offset` past last_id (1 is right)."""
    original = records.select_replay

    def select_replay(personal: Any, broadcast: Any, last_id: str, size: int) -> Any:
        replay = original(personal, broadcast, last_id, size)
        if replay is None:
            return None
        merged = sorted([*personal, *broadcast], key=lambda s: s.seq)[-size:]
        start = len(merged) - len(replay)  # where replay begins: just past last_id
        return merged[max(0, start - 1 + offset) :]

    setattr(reference_server.bus, "select_replay", select_replay)  # noqa: B010
    setattr(reference_server.redis_bus, "select_replay", select_replay)  # noqa: B010


def resume_skips_one() -> None:
    """Resume skips the first notification after last_id."""
    _replay_from(2)


def resume_repeats_one() -> None:
    """Resume sends last_id's own notification again before the ones after it."""
    _replay_from(0)


def _wrap_http(rewrite: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Every HTTP request's scope passes through `rewrite` before the app sees it."""
    original = reference_server.app.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = original(*args, **kwargs)

        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                scope = rewrite(scope)
            return await app(scope, receive, send)

        return wrapped

    reference_server.app.create_app = create_app


def stats_open() -> None:
    """`GET /api/ws/stats` answers without a token (WS_STATS_PUBLIC off): an admin's is added."""
    secret, algorithm = os.environ["JWT_SECRET"], os.environ.get("JWT_ALGORITHM", "HS256")

    def rewrite(scope: dict[str, Any]) -> dict[str, Any]:
        if scope["path"] != protocol.STATS_PATH:
            return scope
        claims = {"sub": "root", "exp": int(time.time()) + 60, "role": "admin"}
        admin = jwt.encode(claims, secret, algorithm).encode()
        headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
        return {**scope, "headers": [*headers, (b"authorization", b"Bearer " + admin)]}

    _wrap_http(rewrite)


def sse_ignores_last_event_id() -> None:
    """SSE streams ignore the Last-Event-ID header (`?last_id=` still works)."""

    def rewrite(scope: dict[str, Any]) -> dict[str, Any]:
        headers = [(k, v) for k, v in scope["headers"] if k != b"last-event-id"]
        return {**scope, "headers": headers}

    _wrap_http(rewrite)


def no_close_at_expiry() -> None:
    """A stream whose token expires stays open: its expiry is taken a year late."""
    original = TokenVerifier.verify

    def verify(self: TokenVerifier, token: str | None) -> Principal:
        principal = original(self, token)
        return dataclasses.replace(principal, expires_at=principal.expires_at + 365 * 86400)

    TokenVerifier.verify = verify  # type: ignore[method-assign]


def field_renamed() -> None:
    """Notifications carry `subject` in place of `title`."""
    original = protocol.encode

    def encode(frame_type: FrameType, data: dict[str, Any]) -> str:
        if frame_type is FrameType.NOTIFICATION and "title" in data:
            data = {("subject" if k == "title" else k): v for k, v in data.items()}
        return original(frame_type, data)

    protocol.encode = encode


def task_broadcast() -> None:
    """Progress of a task goes to every task stream."""

    def to_task_locked(self: Hub, task_id: str, item: Outgoing) -> None:
        tasks: dict[str, Any] = self._tasks
        for key in list(tasks):
            original(self, key, item)

    original = Hub.to_task_locked
    Hub.to_task_locked = to_task_locked  # type: ignore[method-assign]


def log_token() -> None:
    """Log lines keep the query string, token included."""
    logs.redact = lambda text: text


def slow_4409() -> None:
    """Slow consumers are closed with 4409 instead of 4408: a wrong constant in the server."""
    setattr(reference_server.hub, "WS_4408_SLOW_CONSUMER", 4409)  # noqa: B010


def driver_200() -> None:
    """POST /api/notifications answers 200 instead of 201."""
    original = reference_server.app.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = original(*args, **kwargs)

        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            publish = scope["type"] == "http" and scope["method"] == "POST"
            if not (publish and scope["path"] == protocol.NOTIFICATIONS_PATH):
                return await app(scope, receive, send)

            async def send_200(message: Any) -> None:
                if message["type"] == "http.response.start" and message["status"] == 201:
                    message = {**message, "status": 200}
                await send(message)

            return await app(scope, receive, send_200)

        return wrapped

    reference_server.app.create_app = create_app


def archive_newest() -> None:
    """The archive after an id lists only its newest item."""
    for cls in (MemoryBus, RedisBus):
        original = cls.archive

        async def archive(self: Any, user_id: str, after_id: str | None, o: Any = original) -> Any:
            items = await o(self, user_id, after_id)
            return items[-1:]

        cls.archive = archive  # type: ignore[method-assign]


def wrong_user() -> None:
    """`connected` names another user than the token's."""

    def connected(user_id: str, task_id: str | None = None) -> Outgoing:
        return protocol.connected(f"{user_id}-not", task_id)

    setattr(reference_server.streams, "connected", connected)  # noqa: B010


def never_deliver() -> None:
    """Publishes are acknowledged (201) and stored, but no stream ever gets a notification."""

    def to_user_locked(self: Hub, user_id: str, item: Outgoing) -> None:
        return None

    Hub.to_user_locked = to_user_locked  # type: ignore[method-assign]


# -- a server written elsewhere, with the faults of a real one (issue: verdicts) ----------------


def one_user() -> None:
    """Every user's stream is registered as one user, `user`: a notification for anyone
    reaches everyone, and `connected` names `user`."""
    original = TokenVerifier.verify

    def verify(self: TokenVerifier, token: str | None) -> Principal:
        principal = original(self, token)
        return principal if principal.is_admin else dataclasses.replace(principal, user_id="user")

    TokenVerifier.verify = verify  # type: ignore[method-assign]


def refuse_403() -> None:
    """A bad or missing token is refused with HTTP 403 before accept (the contract: accept,
    then close with 4401, which a browser can read)."""
    original = WebSocket.accept
    settings = load_settings()
    verifier = TokenVerifier(
        settings.jwt_secret.get_secret_value(), settings.jwt_algorithm, 1 << 20
    )

    async def accept(self: WebSocket, *args: Any, **kwargs: Any) -> None:
        try:
            verifier.verify(token_from_request(self.query_params, self.headers))
        except AuthError:
            await self.close()  # before accept: HTTP 403
            raise WebSocketDisconnect(1008) from None
        await original(self, *args, **kwargs)

    WebSocket.accept = accept  # type: ignore[method-assign,assignment]


def binary_kills_loop() -> None:
    """A binary frame ends the stream's receive loop without a close: the socket stays open,
    heartbeats go on, and nothing the client sends is answered again (no pong)."""
    original = WebSocket.receive

    async def receive(self: WebSocket) -> Any:
        message = await original(self)
        if message.get("bytes") is not None:
            await asyncio.Event().wait()  # the loop is dead; only the disconnect ends it
        return message

    WebSocket.receive = receive  # type: ignore[method-assign,assignment]


def sse_silent() -> None:
    """The legacy SSE stream sends `connected` and heartbeats, never a notification."""

    def silenced(stream: Callable[..., Any]) -> Callable[..., Any]:
        async def quiet(*args: Any, **kwargs: Any) -> Any:
            async for text in stream(*args, **kwargs):
                if not text.startswith("event: notification"):
                    yield text

        return quiet

    for name in ("hub_stream", "private_stream"):
        setattr(reference_server.routes, name, silenced(getattr(reference_server.routes, name)))


def no_resume() -> None:
    """`last_id` is ignored: a reconnect replays nothing, and sends no `resync` either."""

    async def resume(self: Any, user_id: str, last_id: str) -> list[Any]:
        return []

    MemoryBus.resume = resume  # type: ignore[method-assign]
    RedisBus.resume = resume  # type: ignore[method-assign]


def refuse_most() -> None:
    """Nine users in ten are refused with 4429, whatever they hold."""

    def refusing(acquire: Callable[..., Any]) -> Callable[..., Any]:
        async def acquire_slot(self: Any, user_id: str) -> bool:
            if zlib.crc32(user_id.encode()) % 10:
                return False
            return bool(await acquire(self, user_id))

        return acquire_slot

    MemoryBus.acquire_slot = refusing(MemoryBus.acquire_slot)  # type: ignore[method-assign]
    RedisBus.acquire_slot = refusing(RedisBus.acquire_slot)  # type: ignore[method-assign]


# The example faulty server: a notification app of the kind the seed describes, written
# elsewhere with the faults of a real one, every tool pointed at it (BROKEN_FAULT=faulty).
FAULTY = ("one-user", "refuse-403", "binary-kills-loop", "no-limit", "no-resume", "sse-silent")


def forget_stream() -> None:
    """One notification stream in twenty is forgotten right after `connected`: no close, the
    socket stays open, fan-out and stats no longer count it."""
    original = Hub.add_user_stream
    added = itertools.count(1)

    def add_user_stream(self: Hub, conn: Any, *, counted: bool = True) -> bool:
        ok = original(self, conn, counted=counted)
        if ok and next(added) % 20 == 0:
            asyncio.get_running_loop().call_soon(self.remove, conn)  # after `connected` is out
        return ok

    Hub.add_user_stream = add_user_stream  # type: ignore[method-assign]


def broadcast_twice() -> None:
    """The first broadcast reaches every stream twice."""
    original = Hub.to_everyone_locked
    done: list[bool] = []

    async def to_everyone_locked(self: Hub, item: Outgoing) -> None:
        await original(self, item)
        if not done:
            done.append(True)
            for conn in self.connections():
                conn.push(conn.render(item))

    Hub.to_everyone_locked = to_everyone_locked  # type: ignore[method-assign]


def no_head_deadline() -> None:
    """No deadline for a request head, no connection cap: the guard's limits made infinite."""
    guard.limits = lambda: (1e9, 10**9)  # type: ignore[assignment]


def no_body_limit() -> None:
    """Request bodies are read as the app pleases: whole, before the auth check, however slowly
    they come (the server before its body limit)."""

    async def passthrough(self: bodies.BodyLimit, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    bodies.BodyLimit.__call__ = passthrough  # type: ignore[method-assign]


def swallow_refusal() -> None:
    """A handshake websockets refuses (too many headers, a bad header line) gets no answer: the
    protocol drops the refusal and leaves the connection open. Broken here, in this module, so
    that it stays broken whichever uvicorn answers such handshakes itself (0.55 does)."""
    original = guard.GuardedWebSocketProtocol.data_received

    def data_received(self: guard.GuardedWebSocketProtocol, data: bytes) -> None:
        if self.handshake_initiated:
            return original(self, data)
        self.conn.receive_data(data)
        if self.conn.handshake_exc is not None:
            self.conn.data_to_send()  # the 4xx websockets wrote, thrown away
            return
        self.handle_events()
        return None

    guard.GuardedWebSocketProtocol.data_received = data_received  # type: ignore[method-assign]


FAULTS: dict[str, Callable[[], None]] = {
    "no-head-deadline": no_head_deadline,
    "swallow-refusal": swallow_refusal,
    "no-body-limit": no_body_limit,
    "forget-stream": forget_stream,
    "never-deliver": never_deliver,
    "one-user": one_user,
    "refuse-403": refuse_403,
    "binary-kills-loop": binary_kills_loop,
    "sse-silent": sse_silent,
    "no-resume": no_resume,
    "refuse-most": refuse_most,
    "broadcast-twice": broadcast_twice,
    "slow-4409": slow_4409,
    "driver-200": driver_200,
    "archive-newest": archive_newest,
    "wrong-user": wrong_user,
    "log-token": log_token,
    "leak": leak,
    "no-limit": no_limit,
    "frame-shape": frame_shape,
    "no-heartbeat": no_heartbeat,
    "task-broadcast": task_broadcast,
    "slow-heartbeat": slow_heartbeat,
    "log-token-on-refusal": log_token_on_refusal,
    "heartbeat-doubled": heartbeat_doubled,
    "limit-off-by-one": limit_off_by_one,
    "resume-skips-one": resume_skips_one,
    "resume-repeats-one": resume_repeats_one,
    "stats-open": stats_open,
    "sse-ignores-last-event-id": sse_ignores_last_event_id,
    "no-close-at-expiry": no_close_at_expiry,
    "field-renamed": field_renamed,
    "ended-task-open": ended_task_open,
    "broadcast-one-per-user": broadcast_one_per_user,
    "broadcast-skips-first": broadcast_skips_first,
    "broadcast-first-partition": broadcast_first_partition,
    "resume-skips-broadcasts": resume_skips_broadcasts,
    "any-role-admin": any_role_admin,
    "http-ignores-exp": http_ignores_exp,
    "task-no-heartbeat": task_no_heartbeat,
}


if __name__ == "__main__":
    for name in filter(None, os.environ["BROKEN_FAULT"].split(",")):  # several: comma-separated
        for one in FAULTY if name == "faulty" else (name,):
            FAULTS[one]()
    sys.exit(server_main.main(sys.argv[1:]))
