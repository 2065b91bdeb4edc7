"""How a client check is declared (`@check(id, rule, title, expected)`) and what every check
shares: the policy's numbers (from notify_contract, never from the client under test), what a
check may need of the page, and small helpers."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from browser_check import frames
from browser_check.lab import Archive, Attempt, CheckPage, Socket
from notify_contract.reconnect import ReconnectPolicy
from notify_contract.rules import Rule, rule
from notify_contract.settings import DEFAULTS
from notify_contract.verdicts import CaseFailed

POLICY = ReconnectPolicy()
SLACK_MS = 25.0  # the fake clock fires timers at their due time; this covers rounding only
QUIET_MS = 45_000.0  # how long "no further attempt" is watched: past the policy's 1+2+4+8+16 s


class Requires(StrEnum):
    SIGN_OUT = "sign-out"  # a selector that signs the user out of the page
    TOKEN_HOOK = "token-hook"  # a page function that hands the client a new token
    LIVE = "live"  # a server the check started and can restart (not a --client-url page)


@dataclass
class Options:
    """What the check knows of the page and of the server behind it."""

    heartbeat_ms: float = 1000 * DEFAULTS.heartbeat_interval
    sign_out_selector: str | None = None
    token_hook: str | None = None
    live: LiveServer | None = None


class LiveServer:
    """The real server behind a page the check started: publish to the page's user, restart."""

    user: str

    async def publish(self, title: str) -> str:
        raise NotImplementedError

    async def kill(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError


CheckFn = Callable[[CheckPage, Options], Awaitable[str]]
ScriptFn = Callable[[CheckPage, Attempt], Awaitable[None]]


@dataclass(frozen=True)
class ClientCheck:
    id: str
    rule: Rule
    title: str
    expected: str
    script: ScriptFn | None  # None: the page talks to the real server
    run: CheckFn
    needs: frozenset[Requires] = field(default_factory=frozenset)
    archive: Archive | None = None  # how the check answers the page's archive fetches
    late_close: bool = False  # a close the page starts completes only after its next socket

    @property
    def label(self) -> str:
        return f"[{self.rule.id}] {self.id}"


CHECKS: dict[str, ClientCheck] = {}


def check(
    check_id: str,
    rule_id: str,
    title: str,
    expected: str,
    script: ScriptFn | None,
    needs: tuple[Requires, ...] = (),
    archive: Archive | None = None,
    late_close: bool = False,
) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if check_id in CHECKS:
            raise ValueError(f"two client checks named {check_id!r}")
        CHECKS[check_id] = ClientCheck(
            check_id,
            rule(rule_id),
            title,
            expected,
            script,
            fn,
            frozenset(needs),
            archive,
            late_close,
        )
        return fn

    return register


# -- helpers -------------------------------------------------------------------------------------


def bound_ms(attempt: int) -> float:
    """The policy's longest delay before retry `attempt` (0-based)."""
    return POLICY.delay_ms(attempt)


def gaps(sockets: list[Socket]) -> list[float]:
    """Time from each socket's end to the next socket's start (ms)."""
    out = []
    for before, after in itertools.pairwise(sockets):
        ended = before.ended_at if before.ended_at is not None else before.at
        out.append(after.at - ended)
    return out


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def must(condition: bool, message: str) -> None:
    if not condition:
        raise CaseFailed(message)


class Titles:
    """Unique titles and ids for one check, so that the page's text can be counted."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)

    def title(self, n: int) -> str:
        return f"cc{self.tag}n{n}"

    def id(self, n: int) -> str:
        return f"id-{self.tag}-{n}"

    def frame(self, n: int) -> str:
        return frames.notification(self.id(n), self.title(n))

    def item(self, n: int) -> dict[str, Any]:
        return frames.notification_data(self.id(n), self.title(n))


USER = "client-check"
