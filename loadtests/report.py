"""A run's report: summary.md, and report.html with matplotlib plots (the figures first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from harness.render import render
from harness.reports import environment as shared_environment
from harness.reports import machine

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

LABELS = {
    "peak_connections": ("peak connections", ""),
    "connections_held": ("connections held (median of the hold)", ""),
    "connect_failures": ("connect failures", ""),
    "unexpected_closes": ("unexpected closes", ""),
    "p50_ms": ("delivery latency p50", "ms"),
    "p95_ms": ("delivery latency p95", "ms"),
    "p99_ms": ("delivery latency p99", "ms"),
    "max_ms": ("delivery latency max", "ms"),
    "latency_measured_from": ("delivery latency measured from", ""),
    "broadcasts": ("broadcasts", ""),
    "notifications": ("notifications received", ""),
    "streams_connected": ("streams connected (the clients' count)", ""),
    "owed": ("deliveries owed (the clients' count)", ""),
    "delivered": ("deliveries made", ""),
    "lost": ("lost (owed - delivered)", ""),
    "silent_streams": ("streams owed something that got none of it", ""),
    "misrouted_streams": ("streams whose `connected` named another user", ""),
    "never_connected_streams": ("streams that never got `connected`", ""),
    "gaps": ("gaps seen by clients", ""),
    "duplicates": ("duplicates", ""),
    "mem_per_conn_kb": ("server memory per connection", "KB"),
    "cpu_us_per_msg": ("server CPU per delivered frame", "µs"),
    "loop_lag_max_ms": ("server event-loop lag, max", "ms"),
    "cpu_us_per_delivered": ("server CPU of the hold per delivered notification", "µs"),
    "generator_cpu_us_per_received": ("generator CPU of the hold per received notification", "µs"),
    "generator_mem_per_conn_kb": ("generator memory per stream", "KB"),
    "connect_p50_ms": ("connect time p50", "ms"),
    "connect_p99_ms": ("connect time p99", "ms"),
    "generator_saturated": ("load generator saturated (>= 90% CPU)", ""),
}


def environment() -> dict[str, Any]:
    return shared_environment(machine(), PACKAGES)


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float):
        value = f"{value:,.2f}".rstrip("0").rstrip(".")
    elif isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:,}"
    return f"{value} {unit}".strip()


def headline_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (label, _fmt(figures.get(key), unit))
        for key, (label, unit) in LABELS.items()
        if key in figures
    ]


def plots(
    out: Path,
    rows: list[dict[str, Any]],
    baseline: dict[str, Any],
    broadcasts: list[dict[str, Any]],
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
        bt = [b["sent_at"] - start for b in broadcasts]
        plt.figure(figsize=(8, 3.2))
        for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
            plt.plot(bt, [b[key] or 0 for b in broadcasts], marker="o", label=key[:-3])
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


def markdown(data: dict[str, Any]) -> str:
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
    lines += [f"| {label} | {value} |" for label, value in headline_rows(data["figures"])]
    return "\n".join([*lines, ""])


def _settings_text(data: dict[str, Any]) -> str:
    config = data["config"]
    return (
        "\n".join(f"{k}: {v}" for k, v in config.items())
        + "\n"
        + "\n".join(f"budget: {line}" for line in data["budget"])
    )


def html(data: dict[str, Any], images: list[tuple[str, str]]) -> str:
    figures = data["figures"]
    return render(
        "loadtests",
        "run.html",
        scenario=data["config"]["scenario"],
        status=verdict(data),
        created=data["created"],
        thresholds=data["thresholds"],
        command=data["command"],
        settings=_settings_text(data),
        saturated=bool(figures.get("generator_saturated")),
        rows=headline_rows(figures),
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
    out: Path, data: dict[str, Any], rows: list[dict[str, Any]], baseline: dict[str, Any]
) -> None:
    images = plots(out, rows, baseline, data["broadcasts"]) if rows else []
    (out / "summary.md").write_text(markdown(data))
    (out / "report.html").write_text(html(data, images))
