"""Finding Chromium: Playwright's own browser download cannot be fetched here, so the check runs
the system's Chromium (Debian's `chromium` package) through `executable_path`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Final

ENV_VAR: Final = "CHROMIUM_BIN"
NAMES: Final = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserMissing(Exception):
    """No Chromium to run: the message says where the check looked and how to install one."""


def find_chromium(env: Mapping[str, str] | None = None) -> Path:
    """CHROMIUM_BIN if set (it must be an executable file), else the first of NAMES on PATH."""
    env = os.environ if env is None else env
    given = env.get(ENV_VAR)
    if given:
        path = Path(given)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrowserMissing(f"{ENV_VAR}={given}: not an executable file")
        return path
    for name in NAMES:
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return Path(found)
    raise BrowserMissing(
        f"no Chromium: set {ENV_VAR}, or put one of {', '.join(NAMES)} on PATH "
        "(Debian: apt-get install chromium; .ci/run does it)"
    )
