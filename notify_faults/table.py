"""The reliability table: one row per fault or attack, written as Markdown and JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from notify_contract.verdicts import Verdict

# One outcome enum for every table: the contract suite's verdicts (pass, non-strict, fail, not
# applicable, not run).


@dataclass(frozen=True)
class LostSample:
    """One delivery that never came: the stream, the id, when it was sent after the fault."""

    stream: str
    id: str
    sent_after_fault_s: float


@dataclass
class DeliveryFacts:
    """What the publisher was told was accepted, and what the clients got of it."""

    published: int
    refused_and_retried: int
    refusals: dict[str, int]
    publishes_abandoned: int
    expected_deliveries: int
    lost_acknowledged_before_fault: int
    out_of_order: int
    unacknowledged: int
    delivered_from_archive: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    lost_sample: list[LostSample] = field(default_factory=list)


@contextlib.asynccontextmanager
async def failures_recorded(row: Row, limit_s: float = 900.0) -> AsyncIterator[None]:
    """Whatever the target does, the row ends as a verdict: an exception or an overrun in the
    block is the row's failure, with its message (what was awaited, and what came), never a
    crash that loses the rows already measured. The caller returns `row` after the block."""
    try:
        async with asyncio.timeout(limit_s):
            yield
    except Exception as exc:
        said = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, TimeoutError) and not str(exc):
            said = f"the row did not finish within {limit_s:g} s"
        row.problems.append(said[:600])
        row.finish(f"stopped: {said}"[:300])


class Facts:
    """A row's own figures: each row declares a dataclass of them (written to the JSON)."""


@dataclass
class Row:
    """What was expected of one fault or attack and what a run showed."""

    id: str
    kind: str  # "fault" or "hostile"
    title: str
    expected: str
    observed: str = ""
    outcome: Verdict = Verdict.NOT_RUN
    lost: int | None = None  # None: the row delivers no notifications
    duplicates: int | None = None
    recovery_s: float | None = None  # None: nothing had to recover
    problems: list[str] = field(default_factory=list)
    delivery: DeliveryFacts | None = None
    facts: Facts | None = None
    plots: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def check(self, condition: bool, problem: str) -> None:
        """Record a broken expectation; the row fails if any was recorded."""
        if not condition:
            self.problems.append(problem)

    def finish(self, observed: str) -> Row:
        self.observed = observed
        self.outcome = Verdict.FAIL if self.problems else Verdict.PASS
        return self


def _cell(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(rows: Iterable[Row], meta: dict[str, Any], plot_dir: str = "") -> str:
    """The table; plot links are relative to where the file is written (`plot_dir`)."""
    rows = list(rows)
    counts = {o: sum(1 for r in rows if r.outcome is o) for o in Verdict}
    out = [
        "# Reliability: faults and hostile input",
        "",
        f"Run {meta.get('created', '?')} with `{meta.get('command', '?')}` "
        f"({meta.get('scope', '?')} scope, {meta.get('duration_s', 0):.0f} s). "
        + ", ".join(f"{n} {o.value}" for o, n in counts.items())
        + ".",
        "",
        "lost = notifications the server acknowledged (201) that a stream of their user never "
        "got, neither live, nor by resume, nor from the archive after `resync`; duplicates = the "
        "same id twice on one stream; recovery = seconds from the fault until the last stream was "
        "back (server restarts), both servers' subscriptions were back (PubSub killed, Redis "
        "restarts), or the last mute peer was dropped (half-open); n/a: the row delivers "
        "nothing, or nothing had to recover. Close codes of the hostile rows are those the "
        "suite's streams saw. Figures behind each row: reliability.json.",
        "",
        "| row | expected | observed | lost | dup | recovery s | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        observed = r.observed + ("" if not r.problems else " **Broken:** " + "; ".join(r.problems))
        out.append(
            f"| {_cell(r.id)} | {_cell(r.expected)} | {_cell(observed)} | {_cell(r.lost)} | "
            f"{_cell(r.duplicates)} | {_cell(r.recovery_s)} | {r.outcome.value} |"
        )
    plots = [(r.id, p) for r in rows for p in r.plots]
    if plots:
        out += ["", "## Plots", ""]
        prefix = f"{plot_dir}/" if plot_dir else ""
        out += [f"- {rid}: [{Path(p).name}]({prefix}{p})" for rid, p in plots]
    env = meta.get("environment")
    if env:
        out += ["", "## Environment", "", "```", json.dumps(env, indent=2), "```"]
    return "\n".join(out) + "\n"


def write(
    out_dir: Path, rows: list[Row], meta: dict[str, Any], plot_dir: str = ""
) -> tuple[Path, Path]:
    """reliability.md and reliability.json in `out_dir`; plots are in `plot_dir` below it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "reliability.md"
    js = out_dir / "reliability.json"
    md.write_text(markdown(rows, meta, plot_dir))
    js.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    return md, js
