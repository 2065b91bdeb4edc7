"""Simulated hosts: one Linux network namespace per host, each with one address on a bridge.

A process started on a host (`Host.place`) runs under `ip netns exec`, so it has that host's
address, its own loopback, its own ephemeral ports and its own link, which a fault row can take
down (`Fabric.link`). The bridge keeps an address in this namespace, so the orchestrator reaches
every host directly. Everything is created with a run's own short suffix, so two runs never
share a name, and removed when the context exits (a namespace's removal takes its veth pair).

It needs root and `ip` (iproute2); `unavailable()` says why not, before anything is created.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from notify_stack.stack import Place, StackError

IP: tuple[str, ...] = ("ip",)


@dataclass(frozen=True)
class Host:
    """One simulated host: its name in reports, its namespace, its address and its link."""

    name: str
    netns: str
    address: str
    link: str  # the veth end on the bridge, in the root namespace

    @property
    def place(self) -> Place:
        return Place(self.address, ("ip", "netns", "exec", self.netns))


def unavailable() -> str | None:
    """Why hosts cannot be built here, or None."""
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2) on PATH"
    if os.geteuid() != 0:
        return f"network namespaces need root (this process runs as uid {os.geteuid()})"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run([*IP, *args], capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise StackError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")


def _used_subnets() -> set[str]:
    shown = subprocess.run(
        [*IP, "-4", "route", "show"], capture_output=True, text=True, check=False, timeout=30
    )
    return {line.split()[0] for line in shown.stdout.splitlines() if line}


def pick_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.77.0.0/16 that no route of this namespace covers yet."""
    used = [ipaddress.ip_network(s, strict=False) for s in _used_subnets() if "/" in s]
    for _ in range(64):
        net = ipaddress.IPv4Network(f"10.77.{secrets.randbelow(256)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise StackError("no free /24 in 10.77.0.0/16 for the simulated hosts")


@dataclass
class Fabric:
    """Hosts on one bridge; `link(host, up)` takes a host's link down and back."""

    bridge: str
    gateway: str
    hosts: dict[str, Host]

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def link(self, host: Host, up: bool) -> None:
        _ip("link", "set", host.link, "up" if up else "down")


@contextlib.contextmanager
def fabric(names: list[str]) -> Iterator[Fabric]:
    """Build one namespace per name on a fresh bridge; tear all of it down on exit."""
    reason = unavailable()
    if reason is not None:
        raise StackError(f"cannot simulate hosts: {reason}")
    tag = secrets.token_hex(3)
    net = pick_subnet()
    addresses = list(net.hosts())
    bridge = f"nhb{tag}"
    gateway = str(addresses[0])
    created: list[str] = []
    try:
        # Between real hosts no Linux bridge runs the firewall on every packet: this one does
        # not either (the machine's bridge-nf-call-iptables would send each through netfilter).
        no_netfilter = ("nf_call_iptables", "0", "nf_call_ip6tables", "0", "nf_call_arptables", "0")
        _ip("link", "add", bridge, "type", "bridge", *no_netfilter)
        _ip("addr", "add", f"{gateway}/{net.prefixlen}", "dev", bridge)
        _ip("link", "set", bridge, "up")
        hosts = {}
        for i, name in enumerate(names):
            netns, outside = f"nh{tag}-{name}", f"nh{tag}{i}"
            address = str(addresses[10 + i])
            _ip("netns", "add", netns)
            created.append(netns)
            _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", netns)
            _ip("link", "set", outside, "master", bridge, "up")
            inside = ("-n", netns)
            _ip(*inside, "addr", "add", f"{address}/{net.prefixlen}", "dev", "eth0")
            _ip(*inside, "link", "set", "eth0", "up")
            _ip(*inside, "link", "set", "lo", "up")
            hosts[name] = Host(name, netns, address, outside)
        yield Fabric(bridge, gateway, hosts)
    finally:
        for netns in created:
            with contextlib.suppress(StackError):
                _ip("netns", "delete", netns)
        with contextlib.suppress(StackError):
            _ip("link", "delete", bridge)
