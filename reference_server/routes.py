"""The HTTP endpoints (docs/contract.md section 1): the stats, the metrics, the driver API, the
legacy SSE streams and the browser client's contract module, at module level as one router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from notify_web_client import APP_PATH, CONTRACT_MODULE, contract_module
from reference_server.auth import Principal
from reference_server.metrics import snapshot
from reference_server.protocol import (
    LAST_ID_PARAM,
    METRICS_PATH,
    NOTIFICATIONS_PATH,
    SSE_NOTIFICATIONS_PATH,
    SSE_TASKS_PATH,
    STATS_PATH,
    TASKS_PATH,
    NotificationKind,
)
from reference_server.records import RESERVED_FIELDS
from reference_server.redis_bus import RedisBus
from reference_server.services import Admin, Process, Services, User, current_admin, current_user
from reference_server.sse import HEADERS as SSE_HEADERS
from reference_server.sse import hub_stream, private_stream

router = APIRouter()


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


# -- stats and the driver API ----------------------------------------------------------------


@router.get(STATS_PATH)
async def stats(request: Request, services: Process) -> dict[str, Any]:
    if not services.settings.ws_stats_public:
        current_admin(current_user(request))
    return await services.bus.stats()


@router.get(METRICS_PATH)
async def metrics(services: Process, _: Admin) -> dict[str, Any]:
    """Always an admin's: WS_STATS_PUBLIC opens the stats only."""
    return snapshot(services.hub, services.lag, services.gc_pauses)


@router.post(NOTIFICATIONS_PATH, status_code=201)
async def publish(body: NotificationIn, services: Process, _: Admin) -> dict[str, Any]:
    fields = body.model_dump(exclude={"user_id", "broadcast"}, mode="json")
    return await services.bus.publish(None if body.broadcast else body.user_id, fields)


@router.get(NOTIFICATIONS_PATH)
async def list_after(services: Process, user: User, after: str | None = None) -> dict[str, Any]:
    return {"items": await services.bus.archive(user.user_id, after)}


@router.post(TASKS_PATH, status_code=201)
async def start_task(body: TaskIn, services: Process, user: User) -> dict[str, str]:
    task_id = await services.runner.start(
        user.user_id, body.total_steps, body.step_interval_ms, body.fail_at_step
    )
    return {"task_id": task_id}


# -- legacy SSE --------------------------------------------------------------------------------


def sse_response(
    services: Services, user: Principal, *, last_id: str | None = None, task_id: str | None = None
) -> StreamingResponse:
    """The SSE body of the configured PubSub mode."""
    cfg, bus = services.settings, services.bus
    body: AsyncIterator[str]
    if cfg.sse_pubsub_mode == "per-connection" and isinstance(bus, RedisBus):
        body = private_stream(
            bus,
            user.user_id,
            cfg.ws_heartbeat_interval,
            services.stopping,
            last_id=last_id,
            task_id=task_id,
        )
    else:
        body = hub_stream(
            services.hub,
            bus,
            user.user_id,
            cfg.ws_send_queue,
            last_id=last_id,
            task_id=task_id,
            is_admin=user.is_admin,
        )
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get(SSE_NOTIFICATIONS_PATH)
async def sse_notifications(request: Request, services: Process, user: User) -> StreamingResponse:
    last_id = request.headers.get("last-event-id") or request.query_params.get(LAST_ID_PARAM)
    return sse_response(services, user, last_id=last_id)


@router.get(SSE_TASKS_PATH)
async def sse_task(task_id: str, services: Process, user: User) -> StreamingResponse:
    info = await services.bus.task_info(task_id)
    if info is None:
        raise HTTPException(404, "unknown task")
    if info.owner != user.user_id and not user.is_admin:
        raise HTTPException(403, "not your task")
    return sse_response(services, user, task_id=task_id)


# -- the browser client's page ------------------------------------------------------------------


@router.get(f"{APP_PATH}/{CONTRACT_MODULE}", include_in_schema=False)
async def contract_js() -> Response:
    return Response(contract_module(), media_type="text/javascript")
