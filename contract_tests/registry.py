"""Cases of the contract suite: each tied to a clause of CONTRACT.md and graded like a
conformance suite (pass, non-strict, fail, not run)."""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contract_tests.context import Context


class Level(StrEnum):
    MUST = "MUST"
    SHOULD = "SHOULD"


class Verdict(StrEnum):
    PASS = "pass"
    NON_STRICT = "non-strict"  # a SHOULD was missed
    FAIL = "fail"  # a MUST was broken
    NOT_RUN = "not run"


class Need(StrEnum):
    """What a case needs from the target; a missing one makes the case "not run"."""

    TOKENS = "tokens"  # any valid user and admin tokens
    SECRET = "secret"  # tokens with chosen claims (expired, short-lived, no `sub`)
    DRIVER = "driver"  # a way to make the server publish and start tasks
    DRIVER_HTTP = "driver-http"  # the HTTP driver API itself
    LOGS = "logs"  # log files of the server or its proxy
    ORIGIN = "origin"  # an Origin the target allows


class CaseFailed(Exception):
    """A MUST was broken; the message says which and what was seen."""


class NotRun(Exception):
    """The case could not run against this target; the message says why."""


CaseFn = Callable[["Context"], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    id: str
    clause: str
    level: Level
    title: str
    needs: frozenset[Need]
    run: CaseFn
    timeout: float

    @property
    def label(self) -> str:
        return f"[{self.clause}] {self.id}"


CASES: dict[str, Case] = {}


def case(
    id: str,
    clause: str,
    title: str,
    *,
    level: Level = Level.MUST,
    needs: Iterable[Need] = (Need.TOKENS,),
    timeout: float = 60.0,
) -> Callable[[CaseFn], CaseFn]:
    """Register a case; `clause` is the CONTRACT.md section (e.g. "5")."""

    def register(fn: CaseFn) -> CaseFn:
        if id in CASES:
            raise ValueError(f"two cases named {id!r}")
        CASES[id] = Case(id, clause, level, title, frozenset(needs), fn, timeout)
        return fn

    return register


def select(cases: Iterable[Case], keywords: list[str], excludes: list[str]) -> list[Case]:
    """`-k` keeps cases whose id, clause or title contains any keyword (case-insensitive);
    `--exclude` drops cases whose id matches any glob."""
    chosen = []
    for c in cases:
        text = f"{c.clause} {c.id} {c.title}".lower()
        if keywords and not any(k.lower() in text for k in keywords):
            continue
        if any(fnmatch.fnmatchcase(c.id, pattern) for pattern in excludes):
            continue
        chosen.append(c)
    return sorted(chosen, key=lambda c: int(c.clause))  # stable: file order within a clause
