"""The two plots the fault rows ask for: reconnect times after a restart, and delivery latency
with and without a slow reader."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def reconnects(
    path: Path, attempts_s: list[float], opened_s: list[float], ready_s: float, title: str
) -> Path:
    """Connect attempts as the clients' policy scheduled them (spread by jitter) and completed
    reconnects (shaped by how fast the restarted server accepts), seconds after the fault."""
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.1
    end = max([*attempts_s, *opened_s, ready_s, 0.1])
    bins = int(end / width) + 1
    span = (0, bins * width)
    ax.hist(attempts_s, bins=bins, range=span, color="#9ec5f0", label="attempts, as scheduled")
    ax.hist(opened_s, bins=bins, range=span, color="#1f4e99", alpha=0.8, label="reconnected")
    ax.axvline(ready_s, color="#d9534f", linestyle="--", label=f"server ready ({ready_s:.2f} s)")
    ax.set_xlabel("seconds after the fault")
    ax.set_ylabel("clients per 100 ms")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latency_side_by_side(
    path: Path, first: list[float], second: list[float], first_label: str, second_label: str
) -> Path:
    """Two latency distributions (seconds in, milliseconds shown) as box plots side by side."""
    fig, ax = plt.subplots(figsize=(6, 4))
    data = [[v * 1000 for v in first] or [0.0], [v * 1000 for v in second] or [0.0]]
    ax.boxplot(data, whis=(1, 99), showfliers=False)
    ax.set_xticks(
        [1, 2], [f"{first_label}\n(n={len(first)})", f"{second_label}\n(n={len(second)})"]
    )
    ax.set_ylabel("delivery latency, ms (whiskers: p1-p99)")
    ax.set_title("the other clients' latency", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
