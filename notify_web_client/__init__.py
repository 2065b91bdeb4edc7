"""The reference browser client: an ES module that keeps section 7 of docs/contract.md, and a
notification page on it. No build step; the reference server serves `static/` at /app/ and the
contract's constants, rendered from `notify_contract`, as /app/contract.js."""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

from notify_contract.codes import CLOSE_RULES, Reconnect
from notify_contract.protocol import (
    AFTER_PARAM,
    ARCHIVE_PATH,
    LAST_ID_PARAM,
    TASKS_PATH,
    TOKEN_PARAM,
    WS_NOTIFICATIONS_PATH,
    WS_TASKS_PATH,
)
from notify_contract.reconnect import WATCHDOG_BEATS, ReconnectPolicy

APP_PATH: Final = "/app"
CONTRACT_MODULE: Final = "contract.js"


def static_dir() -> Traversable:
    return resources.files("notify_web_client").joinpath("static")


def contract_module() -> str:
    """The contract's paths, close codes and reconnect policy as an ES module."""
    policy = ReconnectPolicy()
    constants = {
        "WS_NOTIFICATIONS_PATH": WS_NOTIFICATIONS_PATH,
        "WS_TASKS_PATH": WS_TASKS_PATH,
        "ARCHIVE_PATH": ARCHIVE_PATH,
        "TASKS_PATH": TASKS_PATH,
        "TOKEN_PARAM": TOKEN_PARAM,
        "LAST_ID_PARAM": LAST_ID_PARAM,
        "AFTER_PARAM": AFTER_PARAM,
        "POLICY": {
            "baseMs": policy.base_ms,
            "capMs": policy.cap_ms,
            "maxAttempts": policy.max_attempts,
        },
        # rule 7.2: no reconnect at all, or not with the same token
        "FINAL_CODES": sorted(
            r.code for r in CLOSE_RULES if r.reconnect in (Reconnect.NO, Reconnect.NEW_TOKEN)
        ),
        "WATCHDOG_BEATS": WATCHDOG_BEATS,  # rule 7.6
    }
    lines = [f"export const {k} = {json.dumps(v)};" for k, v in constants.items()]
    return "// Rendered from the notify_contract package: do not edit.\n" + "\n".join(lines) + "\n"
