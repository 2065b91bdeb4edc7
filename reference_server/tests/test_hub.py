"""The hub with fake peers: no sockets, so every ordering and limit is exact."""

from __future__ import annotations

import asyncio
import json

import pytest

from notify_contract.codes import WS_4408_SLOW_CONSUMER
from reference_server.hub import Connection, Hub, stats_from_counts
from reference_server.protocol import CloseCode, FrameType, Outgoing


class Peer:
    """A fake connection end; while `gate` is clear, sends wait like a full socket buffer."""

    def __init__(self, *, blocked: bool = False, broken: bool = False) -> None:
        self.texts: list[str] = []
        self.closes: list[int] = []
        self.closed = asyncio.Event()
        self.gate = asyncio.Event()
        self.broken = broken
        if not blocked:
            self.gate.set()

    async def send(self, text: str) -> None:
        await self.gate.wait()
        if self.broken:
            raise ConnectionResetError("peer went away")
        self.texts.append(text)

    async def close(self, code: int, reason: str) -> None:
        await self.gate.wait()
        self.closes.append(code)
        self.closed.set()

    def titles(self) -> list[str]:
        return [json.loads(t)["data"].get("title", "") for t in self.texts]


def note(seq: int, title: str | None = None) -> Outgoing:
    return Outgoing(FrameType.NOTIFICATION, {"title": title or f"n{seq}"}, seq=seq)


def stream(hub: Hub, user: str, peer: Peer, limit: int = 4) -> Connection:
    conn = Connection(user, user, peer.send, peer.close, limit)
    assert hub.add_user_stream(conn)
    return conn


async def test_user_fanout_reaches_every_stream_of_the_user_in_order_and_no_other() -> None:
    hub = Hub(max_per_user=3)
    a1, a2, b = Peer(), Peer(), Peer()
    stream(hub, "alice", a1)
    stream(hub, "alice", a2)
    stream(hub, "bob", b)
    for seq in range(1, 6):
        await hub.to_user("alice", note(seq))
    assert a1.titles() == a2.titles() == ["n1", "n2", "n3", "n4", "n5"]
    assert b.texts == []


async def test_limit_refuses_one_more_and_a_removed_stream_frees_its_slot() -> None:
    released: list[str] = []
    hub = Hub(max_per_user=2, on_released=released.append)
    first = stream(hub, "alice", Peer())
    stream(hub, "alice", Peer())
    extra = Connection("alice", "alice", Peer().send, Peer().close, 4)
    assert not hub.add_user_stream(extra)
    assert hub.stats()["users"] == {"alice": 2}
    first.forget()
    assert released == ["alice"]
    assert hub.add_user_stream(extra)
    assert hub.stats() == {"total_users": 1, "total_connections": 2, "users": {"alice": 2}}


async def test_uncounted_streams_get_delivery_but_no_slot() -> None:
    hub = Hub(max_per_user=1)
    stream(hub, "alice", Peer())
    sse = Peer()
    assert hub.add_user_stream(Connection("alice", "alice", sse.send, sse.close, 4), counted=False)
    await hub.to_user("alice", note(1))
    assert sse.titles() == ["n1"]
    assert hub.stats()["total_connections"] == 1


async def settle() -> None:
    """Let every ready task run until it blocks (the drain tasks wait on the peer's gate)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_slow_consumer_is_closed_with_4408_and_does_not_hold_up_others() -> None:
    hub = Hub(max_per_user=5)
    slow, fast = Peer(blocked=True), Peer()
    slow_conn = stream(hub, "alice", slow, limit=3)
    stream(hub, "alice", fast, limit=3)
    for seq in range(1, 7):
        await hub.to_user("alice", note(seq))
    # The fast peer has everything already; the slow one has one send in flight, three queued.
    assert fast.titles() == ["n1", "n2", "n3", "n4", "n5", "n6"]
    assert slow_conn.closed and hub.stats()["users"] == {"alice": 1}
    await settle()
    slow.gate.set()
    await asyncio.wait_for(slow.closed.wait(), 1)
    assert slow.closes == [WS_4408_SLOW_CONSUMER]
    assert slow.titles() == ["n1"]  # what was in flight; the overflowing queue was dropped


async def test_backpressure_below_the_limit_delivers_everything_in_order() -> None:
    hub = Hub(max_per_user=5)
    peer = Peer(blocked=True)
    conn = stream(hub, "alice", peer, limit=10)
    for seq in range(1, 8):
        await hub.to_user("alice", note(seq))
    assert conn.queued == 6
    await settle()
    peer.gate.set()
    await until_drained(conn)
    assert peer.titles() == [f"n{i}" for i in range(1, 8)]
    assert conn.queued == 0 and not conn.closed


async def test_sequence_numbers_deduplicate_replay_and_live() -> None:
    hub = Hub(max_per_user=5)
    peer = Peer()
    conn = stream(hub, "alice", peer)
    for seq in (1, 2, 2, 1, 3):
        conn.offer(note(seq))
    assert peer.titles() == ["n1", "n2", "n3"]


async def test_a_failed_send_removes_the_stream() -> None:
    hub = Hub(max_per_user=5)
    stream(hub, "alice", Peer(broken=True))
    await hub.to_user("alice", note(1))
    assert hub.stats()["total_connections"] == 0


async def test_task_streams_are_isolated_and_close_after_the_terminal_event() -> None:
    hub = Hub(max_per_user=5)
    t1, t2 = Peer(), Peer()
    for key, peer in (("t1", t1), ("t2", t2)):
        hub.add_task_stream(Connection(key, "alice", peer.send, peer.close, 4))
    await hub.to_task("t1", Outgoing(FrameType.PROGRESS, {"step": 1}, seq=1))
    await hub.to_task("t1", Outgoing(FrameType.COMPLETED, {"step": 2}, seq=2, terminal=True))
    assert [json.loads(t)["type"] for t in t1.texts] == ["progress", "completed"]
    assert t1.closes == [CloseCode.NORMAL_CLOSURE]
    assert t2.texts == [] and t2.closes == []
    assert len(hub.connections()) == 1


async def test_broadcast_yields_between_chunks_and_reaches_all() -> None:
    hub = Hub(max_per_user=1, chunk=3)
    peers = [Peer() for _ in range(10)]
    for i, peer in enumerate(peers):
        stream(hub, f"u{i}", peer)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    job = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    await hub.to_everyone(note(1))
    job.cancel()
    assert all(p.titles() == ["n1"] for p in peers)
    assert ticks - before >= 3  # other tasks ran during the fan-out


async def test_publishes_keep_one_order_even_when_fanout_yields() -> None:
    hub = Hub(max_per_user=1, chunk=2)
    peers = [Peer() for _ in range(7)]
    for i, peer in enumerate(peers):
        stream(hub, f"u{i}", peer)
    await asyncio.gather(*(hub.to_everyone(note(s)) for s in range(1, 6)))
    for peer in peers:
        assert peer.titles() == ["n1", "n2", "n3", "n4", "n5"]


async def test_close_all_closes_every_stream_with_the_code() -> None:
    hub = Hub(max_per_user=5)
    peers = [Peer() for _ in range(3)]
    for peer in peers:
        stream(hub, "alice", peer)
    assert hub.close_all(CloseCode.GOING_AWAY, "bye") == 3
    assert [p.closes for p in peers] == [[1001]] * 3
    assert hub.connections() == []


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([], {"total_users": 0, "total_connections": 0, "users": {}}),
        (
            [("a", 2), ("b", 1), ("a", 1), ("c", 0)],
            {"total_users": 2, "total_connections": 4, "users": {"a": 3, "b": 1}},
        ),
    ],
)
def test_stats_sum_per_user(pairs: list[tuple[str, int]], expected: dict[str, object]) -> None:
    assert stats_from_counts(pairs) == expected


# -- prepared frames: one framing per fan-out, written straight to each transport -------------


class Wire:
    """A fake transport behind a frame writer; `paused` refuses like a full write buffer."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.paused = False

    def write(self, frame: bytes) -> bool:
        if self.paused:
            return False
        self.frames.append(frame)
        return True

    def titles(self) -> list[str]:
        # A short unmasked text frame: 0x81, the length, the payload.
        assert all(f[0] == 0x81 and f[1] == len(f) - 2 for f in self.frames)
        return [json.loads(f[2:])["data"].get("title", "") for f in self.frames]


def wired(hub: Hub, user: str, peer: Peer, wire: Wire, limit: int = 4) -> Connection:
    conn = Connection(user, user, peer.send, peer.close, limit, write=wire.write)
    assert hub.add_user_stream(conn) and conn.prepared
    return conn


async def test_a_broadcast_is_framed_once_and_the_same_bytes_reach_every_transport() -> None:
    hub = Hub(max_per_user=1, chunk=2)
    wires, peers = [Wire() for _ in range(5)], [Peer() for _ in range(5)]
    for i, (wire, peer) in enumerate(zip(wires, peers, strict=True)):
        wired(hub, f"u{i}", peer, wire)
    await hub.to_everyone(note(1, "hello"))
    await hub.heartbeat(Outgoing(FrameType.HEARTBEAT, {}))
    first = wires[0].frames[0]
    assert all(w.frames[0] is first for w in wires)  # one object: framed once, not per stream
    assert all(w.titles() == ["hello", ""] for w in wires)
    assert all(p.texts == [] for p in peers)  # no coroutine send per stream


async def test_a_paused_transport_takes_the_coroutine_path_and_order_is_kept() -> None:
    hub = Hub(max_per_user=1)
    wire, peer = Wire(), Peer(blocked=True)
    conn = wired(hub, "alice", peer, wire, limit=10)
    await hub.to_user("alice", note(1))
    wire.paused = True
    await hub.to_user("alice", note(2))  # refused by the writer: a send waits on the peer
    await hub.to_user("alice", note(3))  # queued behind it
    wire.paused = False
    await hub.to_user("alice", note(4))  # the writer would take it, but n2 and n3 are ahead
    assert wire.titles() == ["n1"] and conn.queued == 2
    peer.gate.set()
    await until_drained(conn)
    await hub.to_user("alice", note(5))
    assert peer.titles() == ["n2", "n3", "n4"]
    assert wire.titles() == ["n1", "n5"]


async def test_a_paused_transport_that_stays_paused_is_a_slow_consumer() -> None:
    hub = Hub(max_per_user=2)
    slow_wire, fast_wire = Wire(), Wire()
    slow_wire.paused = True
    slow_peer = Peer(blocked=True)
    slow = wired(hub, "alice", slow_peer, slow_wire, limit=3)
    wired(hub, "alice", Peer(), fast_wire, limit=3)
    for seq in range(1, 7):
        await hub.to_user("alice", note(seq))
    assert slow.closed and fast_wire.titles() == ["n1", "n2", "n3", "n4", "n5", "n6"]
    slow_peer.gate.set()
    await until_drained(slow)
    assert slow_peer.closes == [WS_4408_SLOW_CONSUMER] and slow_wire.frames == []


async def until_drained(conn: Connection) -> None:
    """Await the stream's drain task, if it has one (a second waits its turn), for 1 s at most."""
    while (drainer := conn._drainer) is not None:
        await asyncio.wait_for(drainer, 1)
