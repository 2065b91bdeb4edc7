"""Which simulated hosts a multihost run builds, what runs on each, and starting it there.

Two Redis (the bus's two partitions), two reference servers and nginx each get a host; the
generator gets three. The stack is
started with `notify_stack.stack`'s own functions, each on its host's address and namespace, and
nginx names its upstreams by those addresses, as it would across real machines.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis as redis_sync

from notify_stack.hosts import Fabric, Host
from notify_stack.stack import (
    NginxProxy,
    RedisServer,
    ServerHandle,
    StackSpec,
    nginx,
    redis_server,
    reference_server,
)

# host name -> tier, in the order the hosts are built (and addressed)
HOSTS: dict[str, str] = {
    "redis1": "redis",
    "redis2": "redis",
    "server1": "servers",
    "server2": "servers",
    "nginx": "nginx",
    "gen1": "generator",
    "gen2": "generator",
    "gen3": "generator",
    # A Redis Cluster of three nodes, for the amplification measurement only (not the bus).
    "valkey1": "cluster",
    "valkey2": "cluster",
    "valkey3": "cluster",
}
MASTER = "gen1"  # the load run's master (and one local worker) runs here
# nginx gives up on an unreachable server after this and tries the next one (its default, 120 s,
# would hold every reconnect of a lost host's streams that long).
NGINX_CONNECT_TIMEOUT = "2s"


def tier_hosts(tier: str) -> tuple[str, ...]:
    return tuple(name for name, t in HOSTS.items() if t == tier)


@dataclass
class OnHosts:
    """The stack as started on the fabric: its secret, its processes and where they run."""

    fabric: Fabric
    secret: str
    redis: list[RedisServer]  # the bus's partitions, in REDIS_URL's order
    servers: list[ServerHandle]
    proxy: NginxProxy

    @property
    def entry(self) -> str:
        return self.proxy.base

    def host(self, name: str) -> Host:
        return self.fabric[name]

    def roots(self) -> dict[str, list[int]]:
        """Each host's processes started so far (the generator hosts' come with the load)."""
        roots: dict[str, list[int]] = {name: [] for name in HOSTS}
        for name, redis in zip(tier_hosts("redis"), self.redis, strict=True):
            roots[name].append(redis.process.pid)
        for name, server in zip(tier_hosts("servers"), self.servers, strict=True):
            roots[name].append(server.process.pid)
        roots["nginx"].append(self.proxy.process.pid)
        return roots

    def describe(self) -> list[tuple[str, str, str, str]]:
        """(host, tier, address, what runs there)"""
        what = {
            "nginx": f"nginx :{self.proxy.port} -> "
            + ", ".join(f"{s.host}:{s.port}" for s in self.servers),
            MASTER: "load master and one generator worker",
        }
        for name, server in zip(tier_hosts("servers"), self.servers, strict=True):
            what[name] = f"reference server :{server.port}"
        for i, (name, redis) in enumerate(zip(tier_hosts("redis"), self.redis, strict=True)):
            what[name] = f"redis-server :{redis.port}, partition {i} of the bus"
        for name in tier_hosts("generator"):
            what.setdefault(name, "generator worker (`notify-harness worker`)")
        for name in tier_hosts("cluster"):
            what[name] = "valkey-server, a Redis Cluster node (the amplification measurement)"
        return [(n, t, self.fabric[n].address, what[n]) for n, t in HOSTS.items()]


@contextlib.contextmanager
def on_hosts(
    fabric: Fabric, logs: Path, spec: StackSpec, module: str = "reference_server"
) -> Iterator[OnHosts]:
    """Redis on each Redis host (the bus's partitions: REDIS_URL lists them all), the servers
    and nginx, each on its host, with the settings of `spec` (a load run's:
    `loadtests.run.stack_spec`); all stopped on exit. `module`: another entry point with the
    same command line (the tests' broken variants)."""
    secret = secrets.token_urlsafe(48)
    with contextlib.ExitStack() as running:
        redis = [
            running.enter_context(redis_server(logs, on=fabric[name].place))
            for name in tier_hosts("redis")
        ]
        urls = ",".join(r.url for r in redis)
        env = {**spec.settings, "JWT_SECRET": secret, "REDIS_URL": urls}
        args = list(spec.server_args)
        servers = [
            running.enter_context(
                reference_server(logs, env, on=fabric[name].place, extra_args=args, module=module)
            )
            for name in tier_hosts("servers")
        ]
        upstreams = [f"{s.host}:{s.port}" for s in servers]
        settings = {
            **spec.nginx_settings,
            "connect_timeout": NGINX_CONNECT_TIMEOUT,
            "max_fails": 1,  # a host that does not answer is skipped, as nginx does by default
            "fail_timeout": "5s",
        }
        proxy = running.enter_context(nginx(logs, upstreams, on=fabric["nginx"].place, **settings))
        yield OnHosts(fabric, secret, redis, servers, proxy)


def publish_calls(redis: list[RedisServer]) -> list[int]:
    """PUBLISH commands each Redis has run (inside the bus's scripts too), from its counters."""
    counts = []
    for r in redis:
        with redis_sync.Redis(host=r.host, port=r.port, socket_timeout=10) as client:
            stats = client.info("commandstats")
        counts.append(int(stats.get("cmdstat_publish", {}).get("calls", 0)))
    return counts
