"""The processes a fault scenario starts, breaks and restarts: redis-server, reference servers
and nginx on fixed loopback ports, so that a restart comes back where clients reconnect.

Built on `notify_stack.stack`, the one way to start the stack; this adds killing and
restarting in place, and stops whatever is left when the scenario ends.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psutil

from notify_contract.tokens import Minter
from notify_stack.stack import (
    NginxProxy,
    RedisServer,
    ServerHandle,
    free_port,
    redis_server,
    start_nginx,
    start_server,
)


class Lab:
    """One scenario's processes. Every start is undone by the ExitStack given at creation."""

    def __init__(self, log_dir: Path, stack: contextlib.ExitStack) -> None:
        self.log_dir = log_dir
        self._stack = stack
        self.secret = secrets.token_urlsafe(48)
        self.tokens = Minter(self.secret)
        self.admin = self.tokens.mint("faults-admin", admin=True)
        self.redis: RedisServer | None = None
        self._redis_port = free_port()
        self.servers: list[ServerHandle] = []
        self._settings: dict[int, dict[str, str]] = {}

    def token(self, user: str) -> str:
        return self.tokens.mint(user, ttl=3600)

    # -- redis ----------------------------------------------------------------------------

    def start_redis(self, *, persist: bool = False) -> RedisServer:
        """redis-server on this lab's port (the same one after a restart); with `persist`, an
        append-only file fsynced on every write, so that a restart gets the data back."""
        self.redis = self._stack.enter_context(
            redis_server(self.log_dir, port=self._redis_port, persist=persist)
        )
        return self.redis

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self._redis_port}/0"

    def kill_redis(self) -> None:
        """SIGKILL: no goodbye to any client, everything in it gone."""
        if self.redis is not None:
            self.redis.process.popen.kill()
            self.redis.process.popen.wait(10)

    # -- reference servers ----------------------------------------------------------------

    def settings(self, **extra: str) -> dict[str, str]:
        """The lab's secret, its Redis once started, and `extra` settings."""
        env = {"JWT_SECRET": self.secret, **extra}
        if self.redis is not None:
            env.setdefault("REDIS_URL", self.redis_url)
        return env

    def start_server(self, settings: Mapping[str, str], port: int | None = None) -> ServerHandle:
        handle = start_server(self.log_dir, settings, port=port)
        self._settings[handle.port] = dict(settings)
        self._stack.callback(handle.process.stop)
        self.servers.append(handle)
        return handle

    def restart(self, handle: ServerHandle) -> ServerHandle:
        """The same settings on the same port; the old process must be gone."""
        if handle.process.alive():
            raise RuntimeError(f"server on port {handle.port} is still running")
        return self.start_server(self._settings[handle.port], port=handle.port)

    @staticmethod
    def kill(handle: ServerHandle, sig: int = signal.SIGKILL, timeout: float = 30.0) -> float:
        """Send `sig` and wait for the exit; returns the seconds it took."""
        started = time.monotonic()
        handle.process.signal(sig)
        handle.process.popen.wait(timeout)
        return time.monotonic() - started

    # -- nginx ----------------------------------------------------------------------------

    def start_nginx(self, upstreams: list[ServerHandle], **settings: Any) -> NginxProxy:
        proxy = start_nginx(self.log_dir, [f"127.0.0.1:{s.port}" for s in upstreams], **settings)
        self._stack.callback(proxy.process.stop)
        return proxy

    @staticmethod
    def reload_nginx(proxy: NginxProxy) -> None:
        subprocess.run(proxy.command("-s", "reload"), check=True, capture_output=True, timeout=30)

    @staticmethod
    def nginx_workers(proxy: NginxProxy) -> list[int]:
        return [c.pid for c in psutil.Process(proxy.process.pid).children()]

    # -- what the processes hold ----------------------------------------------------------

    @staticmethod
    def open_files(handle: ServerHandle) -> int:
        return psutil.Process(handle.process.pid).num_fds()

    @staticmethod
    def rss(handle: ServerHandle) -> int:
        return int(psutil.Process(handle.process.pid).memory_info().rss)


@contextlib.contextmanager
def lab(log_dir: Path) -> Iterator[Lab]:
    log_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        yield Lab(log_dir, stack)
