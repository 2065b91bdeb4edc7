"""Tokens out of text that is kept: log lines, report folders, command lines (rule 1.6).

A query parameter is a token by its decoded name, as a server's framework reads it: `?%74oken=`
is `token`. Shared by the reference server's log filter and every report this toolkit writes.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote_plus

from notify_contract.protocol import TOKEN_PARAM

REDACTED: Final = "[redacted]"
TOKEN_NAMES: Final = frozenset({TOKEN_PARAM, "access_token", "jwt"})
# A query parameter anywhere in a line: its name (still encoded) and its value.
_PARAMETER: Final = re.compile(r"(?:^|(?<=[?&;\s]))([^=&;\s\"'?]+)=([^&;\s\"']*)")
_BEARER: Final = re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def _parameter(match: re.Match[str]) -> str:
    name = match.group(1)
    if unquote_plus(name).strip().lower() in TOKEN_NAMES:
        return f"{name}={REDACTED}"
    return match.group(0)


def redact(text: str) -> str:
    """`text` with the value of every token parameter and every Bearer token replaced."""
    return _BEARER.sub(r"\1" + REDACTED, _PARAMETER.sub(_parameter, text))
