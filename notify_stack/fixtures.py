"""Shared fixtures (a plugin, loaded by the root conftest): real redis-server and uvicorn."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from notify_client.client import StreamClient
from notify_client.driver import Driver
from notify_contract.protocol import WS_NOTIFICATIONS_PATH
from notify_contract.tokens import Minter
from notify_stack.stack import (
    NginxProxy,
    RedisServer,
    ServerHandle,
    redis_server,
    start_nginx,
    start_server,
)

SECRET = "reference-server-test-secret-" + "x" * 40
VERIFIER = Minter(SECRET)
BASE_SETTINGS = {"JWT_SECRET": SECRET, "WS_HEARTBEAT_INTERVAL": "2"}
_ids = itertools.count()


def token(user: str, *, admin: bool = False, ttl: float = 3600.0) -> str:
    return VERIFIER.mint(user, admin=admin, ttl=ttl)


ADMIN = token("root", admin=True)


@pytest.fixture
def user() -> Callable[[str], str]:
    """Fresh user names, so tests sharing one server never see each other's streams."""

    def make(name: str = "user") -> str:
        return f"{name}-{next(_ids)}"

    return make


class Servers:
    """Starts reference servers for one scope and stops every one of them at its end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[ServerHandle] = []
        self.proxies: list[NginxProxy] = []

    def start(
        self,
        redis: RedisServer | None = None,
        workers: int = 1,
        uds: Path | None = None,
        module: str = "reference_server",
        python: Path | None = None,
        port: int | None = None,
        **settings: str,
    ) -> ServerHandle:
        """`port`: listen there (a server started again where a stopped one was)."""
        env = {**BASE_SETTINGS, **settings}
        if redis is not None:
            env["REDIS_URL"] = redis.url
        handle = start_server(
            self.log_dir, env, port=port, workers=workers, uds=uds, module=module, python=python
        )
        self.started.append(handle)
        return handle

    def proxy(self, *servers: ServerHandle, **settings: Any) -> NginxProxy:
        """nginx in front of `servers` (NginxConfig fields as `settings`)."""
        upstreams = [f"unix:{s.uds}" if s.uds else f"127.0.0.1:{s.port}" for s in servers]
        proxy = start_nginx(self.log_dir, upstreams, **settings)
        self.proxies.append(proxy)
        return proxy

    def stop_all(self) -> None:
        for proxy in self.proxies:
            proxy.process.stop()
        for handle in self.started:
            handle.process.stop()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    pool = Servers(tmp_path_factory.mktemp("servers"))
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="module")
def server(servers: Servers) -> ServerHandle:
    """The in-memory reference server most tests share."""
    return servers.start()


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as r:
        yield r


class Opener:
    """Opens streams with minted tokens and closes them all when the test ends."""

    def __init__(self) -> None:
        self.opened: list[StreamClient] = []

    async def __call__(
        self,
        server: ServerHandle,
        user: str | None,
        path: str = WS_NOTIFICATIONS_PATH,
        *,
        tok: str | None = None,
        token_in: str = "query",
        last_id: str | None = None,
        origin: str | None = None,
        max_queue: int | None = 64,
        compression: str | None = None,
    ) -> StreamClient:
        client = await StreamClient.open(
            server.base,
            path,
            tok if tok is not None else (token(user) if user else None),
            token_in=token_in,
            last_id=last_id,
            origin=origin,
            max_queue=max_queue,
            compression=compression,
        )
        self.opened.append(client)
        return client


@pytest.fixture
async def open_stream() -> AsyncIterator[Opener]:
    opener = Opener()
    yield opener
    for client in opener.opened:
        await client.close()


@pytest.fixture
async def driver(server: ServerHandle) -> AsyncIterator[Driver]:
    d = Driver(server.base, ADMIN)
    yield d
    await d.aclose()
