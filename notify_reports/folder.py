"""What every tool's report folder shares: its name, the command that made it (without a
secret) and the environment it ran in."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from notify_contract.redaction import redact

STAMP = "%Y%m%dT%H%M%SZ"


def run_folder(reports: Path, name: str, created: datetime) -> Path:
    """`reports/<name>-<UTC timestamp>`: one folder per run, sorted by time (not created)."""
    return reports / f"{name}-{created.strftime(STAMP)}"


def machine() -> dict[str, Any]:
    """Cores and memory: a load figure means little without them."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpus": os.cpu_count(), "memory_gb": round(memory / 2**30, 1)}


def environment(extra: dict[str, Any], packages: tuple[str, ...]) -> dict[str, Any]:
    """Python, platform, package versions and the git commit, for a report."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent,
    ).stdout.strip()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": commit or None,
        **extra,
    }


def redacted(argv: list[str]) -> list[str]:
    """A command line for a report, without the secret or a token in a URL (every tool writes
    its command)."""
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("[redacted]")
            hide = False
        elif arg == "--jwt-secret":
            out.append(arg)
            hide = True
        elif arg.startswith("--jwt-secret="):
            out.append("--jwt-secret=[redacted]")
        else:
            out.append(redact(arg))
    return out
