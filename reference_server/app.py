"""The ASGI app of one server process, assembled: the services, their lifespan, the body
limit, the HTTP router and the browser client's page under FastAPI, the two streams in front of
it (`StreamsFirst`)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from redis.exceptions import RedisError

from notify_web_client import APP_PATH, static_dir
from reference_server.bodies import BodyLimit
from reference_server.lifecycle import allow_long_request_lines, lifespan
from reference_server.routes import router
from reference_server.services import build_services
from reference_server.settings import Settings, load_settings
from reference_server.stream_endpoints import StreamEndpoints, StreamsFirst

log = logging.getLogger("reference_server")


async def backend_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A lost Redis is a 503 the client may retry, never a 500 with a stack trace."""
    log.warning("redis error on %s: %s", request.url.path, type(exc).__name__)
    return JSONResponse({"detail": "backend unavailable, try again"}, status_code=503)


def create_app(settings: Settings | None = None) -> StreamsFirst:
    """The ASGI app; settings come from the environment unless given."""
    allow_long_request_lines()
    services = build_services(settings or load_settings())
    cfg = services.settings
    app = FastAPI(
        title="reference notification server",
        lifespan=lifespan(services),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the docs are off, and so is the schema they would show
    )
    app.state.services = services
    app.add_middleware(BodyLimit, max_bytes=cfg.http_max_body_bytes, timeout=cfg.http_body_timeout)
    app.add_exception_handler(RedisError, backend_unavailable)
    app.include_router(router)
    app.mount(APP_PATH, StaticFiles(directory=str(static_dir()), html=True), name="app")
    return StreamsFirst(app, StreamEndpoints(services))
