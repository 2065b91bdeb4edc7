"""FastAPI wiring: the endpoints of the contract (section 1) over the hub, the bus and the tasks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import FrameType as StackFrame
from typing import Annotated, Any

import websockets.http11
from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnect

from reference_server.auth import AuthError, Principal, TokenVerifier, token_from_request
from reference_server.bodies import BodyLimit
from reference_server.bus import Bus, MemoryBus
from reference_server.hub import Connection, FrameWrite, Hub
from reference_server.metrics import LoopLag, snapshot
from reference_server.protocol import (
    LAST_ID_PARAM,
    METRICS_PATH,
    NOTIFICATIONS_PATH,
    PREPARED_FRAMES,
    SSE_NOTIFICATIONS_PATH,
    SSE_TASKS_PATH,
    STATS_PATH,
    TASKS_PATH,
    WS_4401_UNAUTHORIZED,
    WS_4404_NOT_FOUND,
    WS_4429_TOO_MANY_CONNECTIONS,
    WS_NOTIFICATIONS_PATH,
    WS_TASKS_PATH,
    CloseCode,
    FrameType,
    NotificationKind,
    heartbeat,
    parse_client_text,
    pong,
)
from reference_server.ratelimit import FrameRate
from reference_server.records import RESERVED_FIELDS
from reference_server.redis_bus import RedisBus
from reference_server.settings import Settings, load_settings
from reference_server.sse import HEADERS as SSE_HEADERS
from reference_server.sse import hub_stream, private_stream
from reference_server.streams import open_task_stream, open_user_stream
from reference_server.tasks import TaskRunner
from web_client import APP_PATH, CONTRACT_MODULE, contract_module, static_dir

log = logging.getLogger("reference_server")


class NotificationIn(BaseModel):
    """Body of `POST /api/notifications`; unknown fields travel in the notification unchanged."""

    model_config = ConfigDict(extra="allow")

    user_id: str | None = Field(None, min_length=1, max_length=256)
    broadcast: bool = False
    title: str = Field(max_length=1000)
    content: str = Field("", max_length=10_000)
    type: NotificationKind = NotificationKind.SYSTEM
    link: str = Field("", max_length=2000)
    source: str = Field("", max_length=256)

    @model_validator(mode="after")
    def _one_target(self) -> NotificationIn:
        if (self.user_id is None) == (not self.broadcast):
            raise ValueError("give exactly one of user_id or broadcast: true")
        reserved = RESERVED_FIELDS & set(self.model_extra or ())
        if reserved:
            raise ValueError(f"fields set by the server: {sorted(reserved)}")
        return self


class TaskIn(BaseModel):
    """Body of `POST /api/tasks`."""

    model_config = ConfigDict(extra="forbid")

    total_steps: int = Field(5, ge=1, le=10_000)
    step_interval_ms: int = Field(200, ge=0, le=600_000)
    fail_at_step: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _fail_inside(self) -> TaskIn:
        if self.fail_at_step is not None and self.fail_at_step > self.total_steps:
            raise ValueError("fail_at_step must be between 1 and total_steps")
        return self


@dataclass
class Services:
    """Everything one server process holds."""

    settings: Settings
    verifier: TokenVerifier
    hub: Hub
    bus: Bus
    runner: TaskRunner
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    lag: LoopLag = field(default_factory=LoopLag)

    def going_away(self) -> None:
        """Shutdown begins: close every stream with 1001 before the server drops them."""
        if not self.stopping.is_set():
            self.stopping.set()
            n = self.hub.close_all(CloseCode.GOING_AWAY, "server shutting down")
            log.info("shutdown: closed %d streams with 1001", n)


def current_user(request: Request) -> Principal:
    """The caller of an HTTP endpoint, from `Authorization: Bearer` or `?token=`."""
    services: Services = request.app.state.services
    try:
        token = token_from_request(request.query_params, request.headers)
        return services.verifier.verify(token)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


def current_admin(user: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not user.is_admin:
        raise HTTPException(403, "admin token required")
    return user


User = Annotated[Principal, Depends(current_user)]
Admin = Annotated[Principal, Depends(current_admin)]


def build_services(settings: Settings) -> Services:
    hub = Hub(settings.ws_max_connections_per_user, chunk=settings.fanout_chunk)
    bus: Bus
    if settings.redis_url is None:
        bus = MemoryBus(hub, settings.ws_history_size, settings.notifications_archive_size)
    else:
        bus = RedisBus(
            hub,
            settings.redis_url,
            history_size=settings.ws_history_size,
            archive_size=settings.notifications_archive_size,
            max_connections=settings.redis_max_connections,
            presence_ttl=settings.presence_ttl,
        )
    hub.on_released = bus.release_slot
    verifier = TokenVerifier(
        settings.jwt_secret.get_secret_value(), settings.jwt_algorithm, settings.jwt_max_bytes
    )
    return Services(settings, verifier, hub, bus, TaskRunner(bus))


async def _heartbeats(hub: Hub, interval: float) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time() + interval
    while True:
        await asyncio.sleep(max(0.0, due - loop.time()))
        due += interval
        await hub.heartbeat(heartbeat())


def _freeze_after_full_collections(
    loop: asyncio.AbstractEventLoop,
) -> Callable[[str, dict[str, Any]], None]:
    """After each full collection, freeze what survived: the streams that are open stay out of
    the next full collection, which then scans only what is newer (GC_FREEZE)."""

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            loop.call_soon_threadsafe(gc.freeze)

    return callback


def _close_streams_on_signal(services: Services) -> Callable[[], None]:
    """Run `going_away` on SIGTERM/SIGINT, then the server's own handler; returns an undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(sig: int, frame: StackFrame | None) -> None:
        loop.call_soon_threadsafe(services.going_away)
        before = previous[signal.Signals(sig)]
        if callable(before):
            before(sig, frame)

    for sig in previous:
        signal.signal(sig, handler)

    def undo() -> None:
        for sig, before in previous.items():
            signal.signal(sig, before)

    return undo


MAX_REQUEST_LINE = 65536


def _allow_long_request_lines() -> None:
    """The handshake parser refuses request lines over 8 KiB, and uvicorn then never flushes its
    414: an oversized token would hang instead of getting 4401. The parser reads this module
    global on every handshake, so raising it here covers every worker process."""
    limit = websockets.http11.MAX_LINE_LENGTH
    websockets.http11.MAX_LINE_LENGTH = max(limit, MAX_REQUEST_LINE)


StreamHandler = Callable[[WebSocket], Awaitable[None]]
TaskStreamHandler = Callable[[WebSocket, str], Awaitable[None]]
TASKS_PREFIX = WS_TASKS_PATH.split("{", 1)[0]


class StreamsFirst:
    """The ASGI app: the two stream endpoints straight to their handlers, the rest to FastAPI.

    Through FastAPI, each open stream keeps its whole middleware, routing and dependency stack
    suspended for the stream's life; straight here it keeps only its handler's frames (README:
    memory per stream).
    """

    def __init__(self, app: FastAPI, notifications: StreamHandler, task: TaskStreamHandler) -> None:
        self.app = app
        self.notifications = notifications
        self.task = task

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            path = scope["path"]
            if path == WS_NOTIFICATIONS_PATH:
                return await self.notifications(WebSocket(scope, receive, send))
            task_id = path.removeprefix(TASKS_PREFIX)
            if task_id != path and task_id and "/" not in task_id:
                return await self.task(WebSocket(scope, receive, send), task_id)
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None) -> StreamsFirst:
    """The ASGI app; settings come from the environment unless given."""
    _allow_long_request_lines()
    services = build_services(settings or load_settings())
    cfg = services.settings

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.bus.start()
        beats = asyncio.create_task(_heartbeats(services.hub, cfg.ws_heartbeat_interval))
        lag = asyncio.create_task(services.lag.run())
        undo_signals = _close_streams_on_signal(services)
        # Full collections over 10k connections paused the server for over a second.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*cfg.gc_threshold)
        refreeze = _freeze_after_full_collections(asyncio.get_running_loop())
        if cfg.gc_freeze:
            gc.callbacks.append(refreeze)
        try:
            yield
        finally:
            if refreeze in gc.callbacks:
                gc.callbacks.remove(refreeze)
            undo_signals()
            services.going_away()
            beats.cancel()
            lag.cancel()
            await services.runner.stop()
            await services.bus.stop()

    app = FastAPI(
        title="reference notification server",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the docs are off, and so is the schema they would show
    )
    app.state.services = services
    app.add_middleware(BodyLimit, max_bytes=cfg.http_max_body_bytes, timeout=cfg.http_body_timeout)

    @app.exception_handler(RedisError)
    async def _redis_down(request: Request, exc: RedisError) -> JSONResponse:
        log.warning("redis error on %s: %s", request.url.path, type(exc).__name__)
        return JSONResponse({"detail": "backend unavailable, try again"}, status_code=503)

    # -- WebSocket streams ----------------------------------------------------------------

    def origin_allowed(ws: WebSocket) -> bool:
        origin = ws.headers.get("origin")
        return not cfg.ws_allowed_origins or origin is None or origin in cfg.ws_allowed_origins

    async def accept(ws: WebSocket) -> Principal | None:
        """Origin check (refused before accept), accept, 1001 if shutting down, then the
        token (4401 after accept)."""
        if not origin_allowed(ws):
            await ws.close()  # before accept: the server answers HTTP 403
            return None
        await ws.accept()
        if services.stopping.is_set():
            # Between SIGTERM and uvicorn closing its listener: a stream opened now would be
            # dropped in a moment; the client backs off and finds another server (5.9, 7.4).
            await ws.close(CloseCode.GOING_AWAY, "server shutting down")
            return None
        try:
            return services.verifier.verify(token_from_request(ws.query_params, ws.headers))
        except AuthError as exc:
            await ws.close(WS_4401_UNAUTHORIZED, str(exc))
            return None

    async def serve_client(ws: WebSocket, conn: Connection, user: Principal) -> None:
        """Answer client frames until the peer leaves (docs/contract.md sections 4, 5 and 11)."""
        loop = asyncio.get_running_loop()
        expiry = loop.call_later(
            max(0.0, user.expires_at - time.time()),
            conn.close,
            WS_4401_UNAUTHORIZED,
            "token expired",
        )
        rate = FrameRate(cfg.ws_client_rate)
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
        ws: WebSocket, conn: Connection, user: Principal, refusal: tuple[int, str] | None
    ) -> None:
        """Close with the refusal, or answer client frames until the peer leaves."""
        if refusal is not None:
            await ws.close(*refusal)
        else:
            await serve_client(ws, conn, user)

    async def guarded(ws: WebSocket, conn: Connection, run: Awaitable[None]) -> None:
        """Run a stream's life; a lost Redis closes it with 1011, and the hub always forgets it."""
        try:
            await run
        except RedisError as exc:
            log.warning("redis error on a stream: %s", type(exc).__name__)
            with contextlib.suppress(Exception):
                await ws.close(1011, "backend unavailable")
        except WebSocketDisconnect:
            pass
        finally:
            conn.forget()

    async def open_notifications(ws: WebSocket, conn: Connection) -> tuple[int, str] | None:
        full = (WS_4429_TOO_MANY_CONNECTIONS, "too many connections")
        if not await services.bus.acquire_slot(conn.user_id):
            return full
        opened = False
        try:
            last_id = ws.query_params.get(LAST_ID_PARAM)
            opened = await open_user_stream(services.hub, services.bus, conn, last_id)
        finally:
            if not opened:
                services.bus.release_slot(conn.user_id)
        return None if opened else full

    async def open_task(conn: Connection, user: Principal) -> tuple[int, str] | None:
        code = await open_task_stream(
            services.hub, services.bus, conn, conn.key, is_admin=user.is_admin
        )
        if code is None:
            return None
        return code, "unknown task" if code == WS_4404_NOT_FOUND else "not your task"

    def stream(ws: WebSocket, key: str, user: Principal) -> Connection:
        """The hub's side of an accepted stream, with the transport's frame writer if offered."""
        write: FrameWrite | None = None
        if cfg.ws_prepared_frames:
            write = ws.scope.get("extensions", {}).get(PREPARED_FRAMES, {}).get("write")
        return Connection(key, user.user_id, ws.send_text, ws.close, cfg.ws_send_queue, write=write)

    async def ws_notifications(ws: WebSocket) -> None:
        user = await accept(ws)
        if user is None:
            return
        conn = stream(ws, user.user_id, user)

        async def run() -> None:
            await hold(ws, conn, user, await open_notifications(ws, conn))

        await guarded(ws, conn, run())

    async def ws_task(ws: WebSocket, task_id: str) -> None:
        user = await accept(ws)
        if user is None:
            return
        conn = stream(ws, task_id, user)

        async def run() -> None:
            await hold(ws, conn, user, await open_task(conn, user))

        await guarded(ws, conn, run())

    # -- HTTP: stats and the driver API ---------------------------------------------------

    @app.get(STATS_PATH)
    async def stats(request: Request) -> dict[str, Any]:
        if not cfg.ws_stats_public:
            current_admin(current_user(request))
        return await services.bus.stats()

    @app.get(METRICS_PATH)
    async def metrics(request: Request) -> dict[str, Any]:
        current_admin(current_user(request))  # always: WS_STATS_PUBLIC opens the stats only
        return snapshot(services.hub, services.lag)

    @app.post(NOTIFICATIONS_PATH, status_code=201)
    async def publish(body: NotificationIn, _: Admin) -> dict[str, Any]:
        fields = body.model_dump(exclude={"user_id", "broadcast"}, mode="json")
        return await services.bus.publish(None if body.broadcast else body.user_id, fields)

    @app.get(NOTIFICATIONS_PATH)
    async def list_after(user: User, after: str | None = None) -> dict[str, Any]:
        return {"items": await services.bus.archive(user.user_id, after)}

    @app.post(TASKS_PATH, status_code=201)
    async def start_task(body: TaskIn, user: User) -> dict[str, str]:
        task_id = await services.runner.start(
            user.user_id, body.total_steps, body.step_interval_ms, body.fail_at_step
        )
        return {"task_id": task_id}

    # -- legacy SSE -----------------------------------------------------------------------

    private = cfg.sse_pubsub_mode == "per-connection" and isinstance(services.bus, RedisBus)

    def sse_response(
        user: Principal, *, last_id: str | None = None, task_id: str | None = None
    ) -> StreamingResponse:
        """The SSE body of the configured PubSub mode."""
        body: AsyncIterator[str]
        if private:
            assert isinstance(services.bus, RedisBus)
            body = private_stream(
                services.bus,
                user.user_id,
                cfg.ws_heartbeat_interval,
                services.stopping,
                last_id=last_id,
                task_id=task_id,
            )
        else:
            body = hub_stream(
                services.hub,
                services.bus,
                user.user_id,
                cfg.ws_send_queue,
                last_id=last_id,
                task_id=task_id,
                is_admin=user.is_admin,
            )
        return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)

    @app.get(SSE_NOTIFICATIONS_PATH)
    async def sse_notifications(request: Request, user: User) -> StreamingResponse:
        last_id = request.headers.get("last-event-id") or request.query_params.get(LAST_ID_PARAM)
        return sse_response(user, last_id=last_id)

    @app.get(SSE_TASKS_PATH)
    async def sse_task(task_id: str, user: User) -> StreamingResponse:
        info = await services.bus.task_info(task_id)
        if info is None:
            raise HTTPException(404, "unknown task")
        if info.owner != user.user_id and not user.is_admin:
            raise HTTPException(403, "not your task")
        return sse_response(user, task_id=task_id)

    # -- the browser client and its page --------------------------------------------------

    @app.get(f"{APP_PATH}/{CONTRACT_MODULE}", include_in_schema=False)
    async def contract_js() -> Response:
        return Response(contract_module(), media_type="text/javascript")

    app.mount(APP_PATH, StaticFiles(directory=str(static_dir()), html=True), name="app")
    return StreamsFirst(app, ws_notifications, ws_task)
