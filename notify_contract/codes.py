"""Close codes (docs/contract.md section 6) and what a client does after each.

Standard codes are websockets' `CloseCode`; only the contract's own 44xx codes are defined here,
with their number in the name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from websockets.frames import CloseCode

__all__ = [
    "BY_CODE",
    "CLOSE_RULES",
    "WS_4401_UNAUTHORIZED",
    "WS_4403_FORBIDDEN",
    "WS_4404_NOT_FOUND",
    "WS_4408_SLOW_CONSUMER",
    "WS_4429_TOO_MANY_CONNECTIONS",
    "CloseCode",
    "CloseRule",
    "Reconnect",
    "describe",
    "reconnect_after",
]

WS_4401_UNAUTHORIZED: Final = 4401
WS_4403_FORBIDDEN: Final = 4403
WS_4404_NOT_FOUND: Final = 4404
WS_4408_SLOW_CONSUMER: Final = 4408
WS_4429_TOO_MANY_CONNECTIONS: Final = 4429


class Reconnect(StrEnum):
    """What a client does after a close (docs/contract.md section 7)."""

    NO = "no"
    BACKOFF = "backoff"  # by the policy
    RESUME = "resume"  # by the policy, with last_id
    NEW_TOKEN = "new token"  # not with the same token


@dataclass(frozen=True, slots=True)
class CloseRule:
    code: int
    name: str
    meaning: str
    reconnect: Reconnect


CLOSE_RULES: Final = (
    CloseRule(CloseCode.NORMAL_CLOSURE, "normal", "the task stream is finished", Reconnect.NO),
    CloseRule(CloseCode.GOING_AWAY, "going away", "the server is shutting down", Reconnect.BACKOFF),
    CloseRule(
        CloseCode.UNSUPPORTED_DATA,
        "unsupported data",
        "the client sent a binary frame",
        Reconnect.NO,
    ),
    CloseRule(
        CloseCode.ABNORMAL_CLOSURE,
        "abnormal",
        "closed without a close frame (network, proxy, crash)",
        Reconnect.BACKOFF,
    ),
    CloseRule(
        CloseCode.INVALID_DATA, "invalid data", "a text frame that is not UTF-8", Reconnect.NO
    ),
    CloseRule(
        CloseCode.POLICY_VIOLATION,
        "policy violation",
        "the client sent frames too fast",
        Reconnect.NO,
    ),
    CloseRule(
        CloseCode.MESSAGE_TOO_BIG, "message too big", "a client frame over the limit", Reconnect.NO
    ),
    CloseRule(CloseCode.INTERNAL_ERROR, "internal error", "the server failed", Reconnect.BACKOFF),
    CloseRule(
        CloseCode.SERVICE_RESTART, "service restart", "the server is restarting", Reconnect.BACKOFF
    ),
    CloseRule(
        WS_4401_UNAUTHORIZED,
        "unauthorized",
        "missing, invalid or expired token",
        Reconnect.NEW_TOKEN,
    ),
    CloseRule(WS_4403_FORBIDDEN, "forbidden", "another user's task", Reconnect.NO),
    CloseRule(WS_4404_NOT_FOUND, "not found", "unknown task", Reconnect.NO),
    CloseRule(
        WS_4408_SLOW_CONSUMER,
        "slow consumer",
        "the stream did not read fast enough",
        Reconnect.RESUME,
    ),
    CloseRule(
        WS_4429_TOO_MANY_CONNECTIONS,
        "too many connections",
        "over the per-user limit",
        Reconnect.BACKOFF,
    ),
)
BY_CODE: Final = {rule.code: rule for rule in CLOSE_RULES}


def reconnect_after(code: int | None) -> Reconnect:
    """What the contract says a client does after `code`; unlisted codes are like 1006."""
    rule = BY_CODE.get(code) if code is not None else None
    return rule.reconnect if rule is not None else Reconnect.BACKOFF


def describe(code: int | None) -> str:
    """`code` with its name for messages: "4408 (slow consumer)", "1006 (closed without a close
    frame)"."""
    if code is None:
        return "no close code (still open)"
    rule = BY_CODE.get(code)
    if rule is None:
        return f"{code} (not a code of the contract)"
    if code == CloseCode.ABNORMAL_CLOSURE:
        return f"{code} (closed without a close frame)"
    if code == CloseCode.INTERNAL_ERROR:
        return f"{code} (server error)"
    return f"{code} ({rule.name})"
