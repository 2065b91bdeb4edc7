"""The files of a run's folder that the locust processes write and the run reads, named once
(without importing locust, which patches the process it is imported into)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

PUBLISHED: Final = "published.jsonl"  # what the publisher sent, one line a notification
MISSING: Final = "workers-missing.json"  # generator workers that never reported their streams
HERDS: Final = "herds.json"  # each worker's capacity and the streams the master gave it
HOSTS: Final = "generator-hosts.jsonl"  # each worker's own CPU and memory, every few seconds


def streams_file(origin: str) -> str:
    """One process's stream records (`notify_client.ledger.StreamLog`, one a line)."""
    return f"streams-{origin}.jsonl"


def latency_file(origin: str) -> str:
    """One process's latency histograms (`loadtests.latencies`, one line a user)."""
    return f"latency-{origin}.jsonl"


STREAMS_GLOB: Final = streams_file("*")
LATENCY_GLOB: Final = latency_file("*")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a run's JSON-lines file; none if the file was never written."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
