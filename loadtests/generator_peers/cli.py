"""The command line every Python peer generator takes, and how it stops."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def arguments(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", required=True, help="the stream URL, ws://HOST:PORT/PATH")
    parser.add_argument("--tokens", type=Path, required=True, help="one token per line")
    parser.add_argument("--rate", type=float, default=500.0, help="streams opened per second")
    parser.add_argument("--result", type=Path, required=True, help="JSON written on SIGTERM")
    return parser.parse_args(argv)


def tokens(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def stop_event() -> threading.Event:
    """Set on SIGTERM or SIGINT: a blocking generator then writes its result and exits."""
    stop = threading.Event()
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: stop.set())
    return stop


def write(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result) + "\n")
