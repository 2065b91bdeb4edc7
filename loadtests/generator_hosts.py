"""What each generator worker reported of itself: its own CPU and memory over the hold (every
worker samples itself, so a worker on another host counts too), and the workers that never
reported their streams at all."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.run_files import HOSTS, MISSING, read_jsonl


@dataclass(frozen=True)
class HostCost:
    """One generator worker's own cost in the hold, as it sampled itself."""

    origin: str
    host: str
    cpu_seconds_in_hold: float | None
    rss_mb: float | None


def at(rows: list[dict[str, Any]], wall: float, key: str) -> float:
    """`key` at `wall`, linear between the samples around it (the nearest one outside them)."""
    before = [r for r in rows if r["wall"] <= wall]
    after = [r for r in rows if r["wall"] >= wall]
    if not before or not after:
        return float((before or after)[-1 if before else 0][key])
    a, b = before[-1], after[0]
    if b["wall"] == a["wall"]:
        return float(a[key])
    share = (wall - a["wall"]) / (b["wall"] - a["wall"])
    return float(a[key] + share * (b[key] - a[key]))


def generator_hosts(run_dir: Path, hold_from: float, hold_until: float) -> list[HostCost]:
    """Each worker's CPU over the hold (between its samples around the hold's ends) and its
    memory in the middle of the hold (`run_files.HOSTS`); None where it sampled too little."""
    by_origin: dict[str, list[dict[str, Any]]] = {}
    for line in read_jsonl(run_dir / HOSTS):
        by_origin.setdefault(line["origin"], []).append(line)
    out = []
    for name, rows in sorted(by_origin.items()):
        rows.sort(key=lambda r: r["wall"])
        spans = len(rows) > 1 and rows[0]["wall"] <= hold_from and rows[-1]["wall"] >= hold_until
        cpu = at(rows, hold_until, "cpu_seconds") - at(rows, hold_from, "cpu_seconds")
        rss = at(rows, (hold_from + hold_until) / 2, "rss_mb")
        out.append(HostCost(name, rows[0]["host"], round(cpu, 3) if spans else None, rss))
    return out


def workers_lost(run_dir: Path) -> int:
    """Generator workers the master named as never done (`shipping.MISSING`): their streams'
    records never reached the run."""
    path = run_dir / MISSING
    return len(json.loads(path.read_text())) if path.exists() else 0
