"""nginx_conf in front of real servers: config check, proxying, logs, timeouts vs heartbeat."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from contract_tests.registry import CASES
from contract_tests.runner import run_target
from nginx_conf import NginxConfig, render
from notify_client.client import StreamClient
from notify_client.driver import Driver
from notify_client.sse_client import SseStream
from notify_client.target import Target
from notify_contract.protocol import SSE_NOTIFICATIONS_PATH, WS_NOTIFICATIONS_PATH
from notify_contract.tokens import Minter
from notify_stack.fixtures import ADMIN, SECRET, Opener, Servers, token
from notify_stack.stack import nginx_binary, nginx_command

Users = Callable[..., str]


@pytest.mark.parametrize(
    "upstreams",
    [("127.0.0.1:8001",), ("127.0.0.1:8001", "127.0.0.1:8002", "unix:/tmp/notify.sock")],
    ids=["one", "tcp-and-unix"],
)
def test_rendered_config_passes_nginx_t(tmp_path: Path, upstreams: tuple[str, ...]) -> None:
    config = NginxConfig(
        str(tmp_path),
        18080,
        upstreams,
        worker_processes=2,
        worker_connections=19000,
        worker_rlimit_nofile=20000,
    )
    (tmp_path / "nginx.conf").write_text(render(config))
    result = subprocess.run(
        nginx_command(nginx_binary(), tmp_path, "-t"),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "nginx.conf").read_text()
    assert "map $http_upgrade $connection_upgrade" in text
    assert "proxy_buffering off;" in text and "proxy_read_timeout 3600s;" in text
    assert "$request " not in text and "$args" not in text  # no query string in the log


def test_worker_connections_above_the_descriptor_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="worker_rlimit_nofile"):
        NginxConfig(
            str(tmp_path), 1, ("127.0.0.1:1",), worker_connections=30000, worker_rlimit_nofile=20000
        )


async def test_streams_pass_through_and_tokens_stay_out_of_the_access_log(
    servers: Servers, open_stream: Opener, user: Users
) -> None:
    backend = servers.start()
    proxy = servers.proxy(backend)
    name = user()
    tok = token(name)
    client = await StreamClient.open(proxy.base, WS_NOTIFICATIONS_PATH, tok)
    sse = await SseStream.open(proxy.base, SSE_NOTIFICATIONS_PATH, tok)
    driver = Driver(proxy.base, ADMIN)
    try:
        assert (await client.recv()).type == "connected"
        await sse.expect("connected")
        sent = await driver.publish(name, "through nginx")
        assert (await client.expect("notification")).data["id"] == sent["id"]
        assert (await sse.expect("notification")).id == sent["id"]  # not buffered
    finally:
        await client.close()
        await sse.aclose()
        await driver.aclose()
    proxy.process.stop()
    log = proxy.access_log.read_text()
    assert "GET /api/ws/notifications HTTP/1.1" in log
    assert tok not in log and tok.split(".")[2] not in log and "token=" not in log


async def test_heartbeats_keep_an_idle_stream_open_past_the_read_timeout(
    servers: Servers, user: Users
) -> None:
    backend = servers.start(WS_HEARTBEAT_INTERVAL="0.3", WS_PING_INTERVAL="600")
    proxy = servers.proxy(backend, read_timeout="1s")
    client = await StreamClient.open(proxy.base, WS_NOTIFICATIONS_PATH, token(user()))
    try:
        await client.expect("connected")
        started = time.monotonic()
        while time.monotonic() - started < 3.0:  # three read timeouts, idle but for heartbeats
            assert (await client.recv(timeout=1.0)).type == "heartbeat"
    finally:
        await client.close()


async def test_a_heartbeat_slower_than_the_read_timeout_loses_idle_streams(
    servers: Servers, user: Users
) -> None:
    backend = servers.start(WS_HEARTBEAT_INTERVAL="5", WS_PING_INTERVAL="600")
    proxy = servers.proxy(backend, read_timeout="1s")
    client = await StreamClient.open(proxy.base, WS_NOTIFICATIONS_PATH, token(user()))
    await client.expect("connected")
    started = time.monotonic()
    frames = await client.until_closed(timeout=4)
    assert frames == []
    assert time.monotonic() - started < 4
    assert client.close_code == 1006  # nginx drops the TCP connection: no close frame


@pytest.mark.parametrize(("buffers", "verdict"), [("4 8k", "non-strict"), ("4 32k", "pass")])
async def test_header_buffers_decide_whether_a_16kb_token_reaches_the_server(
    servers: Servers, buffers: str, verdict: str
) -> None:
    backend = servers.start()
    proxy = servers.proxy(backend, header_buffers=buffers)
    target = Target(proxy.base, buffers, tokens=Minter(SECRET))
    run = await run_target(target, [CASES["token-16kb"]], progress=lambda line: None)
    assert run.results[0].verdict.value == verdict, run.results[0].reason
    if verdict == "non-strict":  # nginx's default answers before the server can say 4401
        assert "HTTP 414" in run.results[0].reason
