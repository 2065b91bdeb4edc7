"""Opening a stream: the sequence is read before `connected` goes out (no sockets)."""

from __future__ import annotations

import json

from reference_server.bus import MemoryBus
from reference_server.hub import Connection, Hub
from reference_server.streams import open_user_stream
from reference_server.tests.test_hub import Peer


class WatchedBus(MemoryBus):
    """Notes what the peer had been sent at the moment the sequence was read."""

    def __init__(self, hub: Hub, peer: Peer) -> None:
        super().__init__(hub, history_size=10, archive_size=10)
        self.peer = peer
        self.sent_before_read: list[str] | None = None

    async def current_seq(self, user_id: str | None = None) -> int:
        self.sent_before_read = [json.loads(t)["type"] for t in self.peer.texts]
        return await super().current_seq(user_id)


async def test_connected_goes_out_after_the_sequence_is_read() -> None:
    """Else a notification published between the two is taken for seen and is not in the
    archive a client fetched on `connected`: the fault suite lost two that way."""
    hub, peer = Hub(max_per_user=3), Peer()
    bus = WatchedBus(hub, peer)
    await bus.publish("alice", {"title": "before"})
    conn = Connection("alice", "alice", peer.send, peer.close, 4)
    assert await open_user_stream(hub, bus, conn, None)
    assert bus.sent_before_read == []
    await bus.publish("alice", {"title": "after"})
    assert [json.loads(t)["type"] for t in peer.texts] == ["connected", "notification"]
    assert json.loads(peer.texts[1])["data"]["title"] == "after"
