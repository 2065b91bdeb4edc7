"""A load generator's connection from a chosen loopback address takes its port at connect
(IP_BIND_ADDRESS_NO_PORT), not by a bind-time search that slows as the ports fill."""

from __future__ import annotations

import socket
import sys

import pytest

from notify_client.blocking import connect_from

IP_BIND_ADDRESS_NO_PORT = 24


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux socket option")
def test_the_connection_comes_from_the_source_address_with_the_port_left_to_connect() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        sock = connect_from(server.getsockname(), 5.0, ("127.0.0.2", 0))
        try:
            peer, (host, _) = server.accept()
            peer.close()
            assert host == "127.0.0.2" == sock.getsockname()[0]
            assert sock.getsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT) == 1
        finally:
            sock.close()


def test_without_a_source_address_it_is_a_plain_connection() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        sock = connect_from(server.getsockname(), 5.0, None)
        try:
            peer, _ = server.accept()
            peer.close()
            assert sock.getsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT) == 0
        finally:
            sock.close()
