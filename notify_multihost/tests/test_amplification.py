"""The amplification measurement on a real three-node cluster: classic Pub/Sub copies every
message to every other node, sharded Pub/Sub to none (no replicas)."""

from __future__ import annotations

from pathlib import Path

import pytest

from notify_multihost.amplification import NODES, measure
from notify_stack import hosts

pytestmark = pytest.mark.skipif(hosts.unavailable() is not None, reason=str(hosts.unavailable()))


def test_classic_publishes_reach_every_node_and_sharded_ones_stay_on_their_shard(
    tmp_path: Path,
) -> None:
    with hosts.fabric(list(NODES)) as fabric:
        amp = measure(fabric, tmp_path, messages=50)
    publisher = amp.nodes[0]
    assert dict(zip(amp.nodes, amp.classic_received, strict=True)) == {
        n: 0 if n == publisher else 50 for n in amp.nodes
    }
    assert amp.classic_per_message == len(NODES) - 1
    assert amp.sharded_received == (0, 0, 0)
