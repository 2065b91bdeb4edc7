"""What one server process holds (the hub, the bus, the tasks, the token check), and who is
calling an HTTP endpoint."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from reference_server.auth import AuthError, Principal, TokenVerifier, token_from_request
from reference_server.bus import Bus, MemoryBus
from reference_server.hub import Hub
from reference_server.metrics import GcPauses, LoopLag
from reference_server.protocol import CloseCode
from reference_server.redis_bus import RedisBus
from reference_server.settings import Settings
from reference_server.tasks import TaskRunner

log = logging.getLogger("reference_server")


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
    gc_pauses: GcPauses = field(default_factory=GcPauses)

    def going_away(self) -> None:
        """Shutdown begins: close every stream with 1001 before the server drops them."""
        if not self.stopping.is_set():
            self.stopping.set()
            n = self.hub.close_all(CloseCode.GOING_AWAY, "server shutting down")
            log.info("shutdown: closed %d streams with 1001", n)


def services_of(request: Request) -> Services:
    """The process's services, which the app holds (`create_app`)."""
    services: Services = request.app.state.services
    return services


def current_user(request: Request) -> Principal:
    """The caller of an HTTP endpoint, from `Authorization: Bearer` or `?token=`."""
    services = services_of(request)
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
Process = Annotated[Services, Depends(services_of)]


def build_services(settings: Settings) -> Services:
    hub = Hub(settings.ws_max_connections_per_user, chunk=settings.fanout_chunk)
    bus: Bus
    if settings.redis_url is None:
        bus = MemoryBus(hub, settings.ws_history_size, settings.notifications_archive_size)
    else:
        bus = RedisBus(
            hub,
            settings.redis_urls,
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
