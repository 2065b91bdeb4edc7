"""What the reference server takes from uvicorn beyond its public API, named in one place.

`guard.py` subclasses uvicorn's h11 and websockets-sansio protocols and reads and writes their
state; `keepalive.py` pings through it; `lean.py` stands in for the Event and Queue uvicorn keeps
per stream. None of that is public API, so pyproject.toml bounds uvicorn to the releases it was
read from (`WRITTEN_FOR`), and `moved()` says what a new release no longer has: the test of this
module fails with that one line when an upgrade moves any of it.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Any, Final

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from reference_server.lean import Flag, Inbox

WRITTEN_FOR: Final = ">=0.52.1,<0.56"  # pyproject.toml says the same; 0.52.0 lacks `disconnected`

# Attributes of a protocol instance that guard.py and keepalive.py use (read, write or call).
H11_STATE: Final = (
    "connections",
    "cycle",
    "loop",
    "transport",
    "connection_made",
    "connection_lost",
    "data_received",
    "handle_websocket_upgrade",
    "on_response_complete",
)
WS_STATE: Final = (
    "conn",
    "loop",
    "transport",
    "scope",
    "queue",
    "writable",
    "request",
    "response",
    "handshake_initiated",
    "handshake_complete",
    "close_sent",
    "disconnected",
    "ping_interval",
    "ping_timeout",
    "pending_ping_payload",
    "ping_sent_at",
    "send",
    "handle_connect",
    "handle_events",
    "handle_parser_exception",
    "data_received",
    "connection_lost",
    "start_keepalive",
    "stop_keepalive",
    "keepalive_timeout",
)
# uvicorn's own calls on the per-stream objects lean.py replaces: each must exist on the stand-in.
STAND_INS: Final = {"queue": Inbox, "writable": Flag}


async def _app(scope: Any, receive: Any, send: Any) -> None:
    """An ASGI app for a Config that is never served."""


def _protocols() -> tuple[H11Protocol, WebSocketsSansIOProtocol]:
    config = Config(app=_app, ws="websockets-sansio", http="h11", log_config=None)
    config.load()
    loop = asyncio.new_event_loop()
    try:
        state = ServerState()
        return (
            H11Protocol(config, state, {}, _loop=loop),
            WebSocketsSansIOProtocol(config, state, {}, _loop=loop),
        )
    finally:
        loop.close()


def moved() -> list[str]:
    """Every internal named here that the installed uvicorn lacks ('Class.name'), and every
    call uvicorn makes on a stand-in's object that the stand-in cannot take."""
    http, ws = _protocols()
    source = inspect.getsource(WebSocketsSansIOProtocol)
    # What a handshake sets (scope, request, response) is not on a new instance: it is in the
    # source as an assignment.
    later = set(re.findall(r"self\.(\w+)\s*(?::[^=\n]+)?=[^=]", source))
    gone = [f"H11Protocol.{name}" for name in H11_STATE if not hasattr(http, name)]
    gone += [
        f"WebSocketsSansIOProtocol.{name}"
        for name in WS_STATE
        if not hasattr(ws, name) and name not in later
    ]
    for attribute, stand_in in STAND_INS.items():
        for method in sorted(set(re.findall(rf"self\.{attribute}\.(\w+)", source))):
            if not hasattr(stand_in, method):
                gone.append(f"self.{attribute}.{method}() (lean.{stand_in.__name__} lacks it)")
    return gone
