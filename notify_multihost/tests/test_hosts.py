"""The simulated hosts, for real: namespaces on a bridge, a link down and back, nothing left."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from notify_stack import hosts
from notify_stack.stack import port_open, spawn, wait_until

pytestmark = pytest.mark.skipif(hosts.unavailable() is not None, reason=str(hosts.unavailable()))

LISTEN = """
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
while True:
    s.accept()[0].close()
"""


def _from(host: hosts.Host, address: str, port: int) -> bool:
    """Can `host` reach address:port? (a connect from inside its namespace)"""
    probe = f"import socket; socket.create_connection(('{address}', {port}), timeout=1)"
    done = subprocess.run(
        [*host.place.prefix, sys.executable, "-c", probe],
        check=False,
        capture_output=True,
        timeout=30,
    )
    return done.returncode == 0


def test_hosts_reach_each_other_until_a_link_goes_down(tmp_path: Path) -> None:
    with hosts.fabric(["a", "b"]) as fab:
        a, b = fab["a"], fab["b"]
        assert a.address != b.address
        port = 40123
        server = spawn(
            "listener", [sys.executable, "-c", LISTEN, a.address, str(port)], tmp_path, on=a.place
        )
        try:
            wait_until(lambda: port_open(a.address, port), 10, "listener", alive=server.alive)
            # the listener is on a's address, not on this namespace's loopback
            assert not port_open("127.0.0.1", port)
            fab.link(a, up=False)
            assert not _from(b, a.address, port)
            fab.link(a, up=True)
            assert _from(b, a.address, port)
        finally:
            server.stop()
        names = fab["a"].netns, fab["b"].netns
    listed = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert not any(n in listed for n in names), listed
    links = subprocess.run(
        ["ip", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    assert fab.bridge not in links


def test_a_host_sees_only_its_own_address() -> None:
    with hosts.fabric(["only"]) as fab:
        host = fab["only"]
        shown = subprocess.run(
            [*host.place.prefix, "ip", "-4", "-o", "addr", "show"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert host.address in shown
        assert f"inet {fab.gateway}/" not in shown
        with pytest.raises(ConnectionRefusedError):  # reachable, and nothing listens there
            socket.create_connection((host.address, 1), timeout=1)
