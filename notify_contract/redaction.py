"""Tokens out of text that is kept: log lines, report folders, command lines (rule 1.6).

A query parameter is a token by its decoded name, as a server's framework reads it: `?%74oken=`
is `token`. Shared by the reference server's log filter and every report this toolkit writes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final
from urllib.parse import unquote_plus

from notify_contract.protocol import TOKEN_PARAM

REDACTED: Final = "[redacted]"
TOKEN_NAMES: Final = frozenset({TOKEN_PARAM, "access_token", "jwt"})
# A query parameter anywhere in a line: its name (still encoded) and its value.
_PARAMETER: Final = re.compile(r"(?:^|(?<=[?&;\s]))([^=&;\s\"'?]+)=([^&;\s\"']*)")
_BEARER: Final = re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# A JWT wherever it stands, its dots also percent-encoded (a URL quoted in a message).
JWT_SHAPE: Final = re.compile(
    r"eyJ[A-Za-z0-9_-]{8,}(?:\.|%2[Ee])eyJ[A-Za-z0-9_-]{8,}(?:\.|%2[Ee])[A-Za-z0-9_-]*"
)


def _parameter(match: re.Match[str]) -> str:
    name = match.group(1)
    if unquote_plus(name).strip().lower() in TOKEN_NAMES:
        return f"{name}={REDACTED}"
    return match.group(0)


def redact(text: str) -> str:
    """`text` with the value of every token parameter and every Bearer token replaced."""
    return _BEARER.sub(r"\1" + REDACTED, _PARAMETER.sub(_parameter, text))


def scrub(text: str) -> str:
    """`redact`, and every JWT-shaped string replaced too, wherever it stands (a log line of a
    process that did not redact its own)."""
    return JWT_SHAPE.sub(REDACTED, redact(text))


def leaks(folder: Path) -> list[str]:
    """The files under `folder` (relative names) that hold a JWT-shaped string: a report this
    toolkit wrote must hold none (rule 1.6 binds its own output as much as a server's log)."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix in {".png", ".jpg"}:
            continue
        if JWT_SHAPE.search(path.read_text(errors="replace")):
            found.append(str(path.relative_to(folder)))
    return found


def leak_line(folder: Path) -> str | None:
    """One line for a tool to end its run with if its report holds a token, else None."""
    found = leaks(folder)
    if not found:
        return None
    return (
        f"the report holds a token in {', '.join(found[:5])}: a bug of this toolkit; do not "
        "share the report"
    )
