"""A run's report: summary.md, and report.html with matplotlib plots (the figures first)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

from loadtests.figures import Figures, shown
from loadtests.summary import Broadcast, Latency
from notify_reports.folder import environment as shared_environment
from notify_reports.folder import machine
from notify_reports.render import render

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PACKAGES = (
    "ws-notify-harness",
    "locust",
    "uvicorn",
    "uvloop",
    "websockets",
    "fastapi",
    "redis",
    "psutil",
)


def environment() -> dict[str, Any]:
    return shared_environment(machine(), PACKAGES)


LATENCY_LINES: list[tuple[str, Callable[[Latency], float | None]]] = [
    ("p50", lambda t: t.p50_ms),
    ("p95", lambda t: t.p95_ms),
    ("p99", lambda t: t.p99_ms),
    ("max", lambda t: t.max_ms),
]


def plots(
    out: Path,
    rows: list[dict[str, Any]],
    baseline: dict[str, Any],
    broadcasts: list[Broadcast],
) -> list[tuple[str, str]]:
    """The PNGs, each with a caption."""
    made = []
    t = [r["t"] for r in rows]

    def save(name: str, caption: str) -> None:
        plt.tight_layout()
        plt.savefig(out / name, dpi=90)
        plt.close()
        made.append((name, caption))

    plt.figure(figsize=(8, 3.2))
    plt.plot(t, [r.get("total_connections") or 0 for r in rows], label="server (stats)")
    if any(r.get("nginx_active") for r in rows):
        plt.plot(t, [r.get("nginx_active") or 0 for r in rows], label="nginx active")
    plt.xlabel("seconds")
    plt.ylabel("connections")
    plt.legend()
    save("connections.png", "Open streams over time")

    if broadcasts:
        start = rows[0]["wall"] if rows else 0
        bt = [b.sent_at - start for b in broadcasts]
        plt.figure(figsize=(8, 3.2))
        for label, pick in LATENCY_LINES:
            plt.plot(bt, [pick(b.latency) or 0 for b in broadcasts], marker="o", label=label)
        plt.xlabel("seconds (broadcast sent)")
        plt.ylabel("delivery latency (ms)")
        plt.legend()
        save("latency.png", "Delivery latency of each broadcast")

    base = sum(s.get("rss_mb", 0) for s in baseline.get("servers", []))
    per_conn: list[float] = []
    for r in rows:
        conns = r.get("total_connections") or 0
        rss = sum(s.get("rss_mb", 0) for s in r.get("servers", []))
        per_conn.append((rss - base) * 1024 / conns if conns > 100 else float("nan"))
    plt.figure(figsize=(8, 3.2))
    plt.plot(t, per_conn)
    plt.xlabel("seconds")
    plt.ylabel("KB per connection")
    save("memory.png", "Server memory per connection (RSS above the idle baseline)")

    plt.figure(figsize=(8, 3.2))
    groups = {"servers": "server", "nginx": "nginx worker", "generators": "locust"}
    for key, label in groups.items():
        width = max((len(r.get(key, [])) for r in rows), default=0)
        for i in range(width):
            series = [
                r[key][i].get("cpu_percent", 0) if i < len(r.get(key, [])) else 0 for r in rows
            ]
            plt.plot(t, series, label=f"{label} {i + 1}")
    if any(r.get("redis") for r in rows):
        plt.plot(t, [(r.get("redis") or {}).get("cpu_percent", 0) for r in rows], label="redis")
    plt.xlabel("seconds")
    plt.ylabel("CPU % (one core = 100)")
    plt.legend(fontsize=7, ncol=3)
    save("cpu.png", "CPU per process")

    if any(r.get("redis") for r in rows):
        plt.figure(figsize=(8, 3.2))
        plt.plot(
            t,
            [(r.get("redis") or {}).get("connected_clients", 0) for r in rows],
            label="connected clients",
        )
        plt.plot(
            t,
            [(r.get("redis") or {}).get("pubsub_clients", 0) for r in rows],
            label="PubSub clients",
        )
        plt.xlabel("seconds")
        plt.ylabel("Redis clients")
        plt.legend()
        save("redis.png", "Redis connections")
    return made


def markdown(data: dict[str, Any], figures: Figures) -> str:
    lines = [
        f"# Load run: {data['config']['scenario']} ({data['created']})",
        "",
        f"**{verdict(data)}**",
        "",
        f"Command: `{data['command']}`",
        "",
        "## Thresholds",
        "",
    ]
    lines += [f"- {'met' if t['ok'] else 'MISSED'}: {t['text']}" for t in data["thresholds"]]
    lines += ["", "## Settings", "", "```", _settings_text(data), "```", ""]
    lines += ["## Figures", "", "| figure | value |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in shown(figures)]
    return "\n".join([*lines, ""])


def _settings_text(data: dict[str, Any]) -> str:
    config = data["config"]
    return (
        "\n".join(f"{k}: {v}" for k, v in config.items())
        + "\n"
        + "\n".join(f"budget: {line}" for line in data["budget"])
    )


def html(data: dict[str, Any], figures: Figures, images: list[tuple[str, str]]) -> str:
    return render(
        "loadtests",
        "run.html",
        scenario=data["config"]["scenario"],
        status=verdict(data),
        created=data["created"],
        thresholds=data["thresholds"],
        command=data["command"],
        settings=_settings_text(data),
        saturated=bool(figures.generator_saturated),
        rows=shown(figures),
        images=images,
        environment=str(data["environment"]),
    )


def verdict(data: dict[str, Any]) -> str:
    """The run's verdict, first in every report: pass, or which thresholds it missed."""
    missed = [t for t in data["thresholds"] if not t["ok"]]
    if not missed:
        return f"PASS: {len(data['thresholds'])} thresholds met"
    return f"FAIL: {len(missed)} of {len(data['thresholds'])} thresholds missed"


def write(
    out: Path,
    data: dict[str, Any],
    figures: Figures,
    broadcasts: list[Broadcast],
    samples: list[dict[str, Any]],
    baseline: dict[str, Any],
) -> None:
    images = plots(out, samples, baseline, broadcasts) if samples else []
    (out / "summary.md").write_text(markdown(data, figures))
    (out / "report.html").write_text(html(data, figures, images))
