"""The managed stack: redis-server, the reference server and nginx, with settings short enough
for a quick run, and what the suite must know of them. The contract suite and the fault suite
both check against it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from notify_client.target import Target
from notify_contract.tokens import Minter
from notify_stack.stack import NginxProxy, RedisServer, ServerHandle, Stack, StackSpec, stack

ALLOWED_ORIGIN = "https://app.example"
MANAGED = {
    "WS_HEARTBEAT_INTERVAL": "0.5",
    "WS_HISTORY_SIZE": "20",
    "WS_SEND_QUEUE": "16",
    "WS_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
    "WS_COMPRESSION": "true",  # so that the compressed-frame case runs
}
MANAGED_READ_TIMEOUT = 2.0  # nginx proxy_read_timeout, below the idle hold of 3 s


@dataclass
class ManagedStack:
    """The running stack and what the suite knows of it because it chose the settings."""

    running: Stack

    @property
    def secret(self) -> str:
        return self.running.secret

    @property
    def redis(self) -> RedisServer:
        assert self.running.redis is not None
        return self.running.redis

    @property
    def server(self) -> ServerHandle:
        return self.running.servers[0]

    @property
    def proxy(self) -> NginxProxy:
        assert self.running.proxy is not None
        return self.running.proxy

    def targets(self, declared: Target) -> list[Target]:
        """The declared target pointed at the server directly and through nginx, with what the
        suite knows because it chose the settings (they win over the declared ones)."""
        limits = replace(
            declared.limits,
            heartbeat_interval=float(MANAGED["WS_HEARTBEAT_INTERVAL"]),
            history_size=int(MANAGED["WS_HISTORY_SIZE"]),
        )
        known = {
            "tokens": Minter(self.secret),
            "limits": limits,
            "allowed_origin": ALLOWED_ORIGIN,
            "idle_hold": 3.0,
        }
        server_log = self.server.process.log_path
        return [
            declared.at(self.server.base, "direct", logs=(server_log,), **known),
            declared.at(
                self.proxy.base, "nginx", logs=(self.proxy.access_log, server_log), **known
            ),
        ]

    def describe(self) -> str:
        return self.running.describe()


@contextlib.contextmanager
def managed_stack(log: Path, settings: Mapping[str, str] | None = None) -> Iterator[ManagedStack]:
    """Start the three; `settings` override MANAGED. Everything is stopped on the way out."""
    spec = StackSpec(
        settings={**MANAGED, **(settings or {})},
        redis=True,
        nginx=True,
        nginx_settings={"read_timeout": f"{MANAGED_READ_TIMEOUT:g}s"},
    )
    with stack(log, spec) as running:
        yield ManagedStack(running)
