"""Cases of the contract suite: each cites a numbered rule of docs/contract.md, takes its grade
(MUST or SHOULD) from that rule, and is graded like a conformance suite (pass, non-strict,
fail, not applicable, not run)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from notify_contract.rules import Level, Rule, rule

if TYPE_CHECKING:
    from contract_tests.context import Context, Target

__all__ = [
    "CASES",
    "Case",
    "CaseFailed",
    "Level",
    "Need",
    "NotApplicable",
    "NotRun",
    "Verdict",
    "case",
    "select",
]


class Verdict(StrEnum):
    PASS = "pass"
    NON_STRICT = "non-strict"  # the outcome a SHOULD rule names was seen
    FAIL = "fail"  # a MUST was broken, or a case could not finish
    # A conditional rule the target does not take on (an allowlist it has not configured,
    # compression off, a part of the API it declares absent): never blocks a pass.
    NOT_APPLICABLE = "not applicable"
    NOT_RUN = "not run"  # the case could run if the user gave something (a log, a command)


class Need(StrEnum):
    """What a case needs from the target; a missing one makes the case "not run"."""

    TOKENS = "tokens"  # any valid user and admin tokens
    SECRET = "secret"  # tokens with chosen claims (expired, short-lived, no `sub`)
    DRIVER = "driver"  # a way to make the server publish and start tasks
    DRIVER_HTTP = "driver-http"  # the HTTP driver API itself
    LOGS = "logs"  # log files of the server or its proxy
    ORIGIN = "origin"  # an Origin the target allows (none given: it has no allowlist)
    # Parts of the API a target may declare it lacks (--without): "not applicable", not "fail".
    TASKS = "tasks"
    SSE = "sse"
    STATS = "stats"
    ARCHIVE = "archive"


FEATURES = (Need.TASKS, Need.SSE, Need.STATS, Need.ARCHIVE)


class CaseFailed(Exception):
    """A MUST was broken; the message says which and what was seen."""


class NotRun(Exception):
    """The case could not run against this target; the message says why."""


class NotApplicable(Exception):
    """The target does not take on the case's rule (a feature it has off); the message says
    which, and how to declare it on if it is."""


CaseFn = Callable[["Context"], Awaitable[None]]
Estimate = Callable[["Target"], float]


@dataclass(frozen=True)
class Case:
    id: str
    rule: Rule
    title: str
    needs: frozenset[Need]
    run: CaseFn
    timeout: float
    after: tuple[str, ...]  # cases whose failure makes this one meaningless
    estimate: Estimate  # seconds it takes against a target, for progress
    last: bool = False  # runs after every other case of a run (it judges the whole run)

    @property
    def clause(self) -> str:
        return self.rule.id

    @property
    def level(self) -> Level:
        return self.rule.level

    @property
    def label(self) -> str:
        return f"[{self.rule.id}] {self.id}"


CASES: dict[str, Case] = {}


def case(
    id: str,
    rule_id: str,
    title: str,
    *,
    needs: Iterable[Need] = (Need.TOKENS,),
    timeout: float = 60.0,
    after: Iterable[str] = (),
    estimate: Estimate | None = None,
    last: bool = False,
) -> Callable[[CaseFn], CaseFn]:
    """Register a case that checks rule `rule_id` ("5.5") of docs/contract.md."""

    def register(fn: CaseFn) -> CaseFn:
        if id in CASES:
            raise ValueError(f"two cases named {id!r}")
        unknown = [a for a in after if a not in CASES]
        if unknown:
            raise ValueError(f"{id} runs after {unknown}, which are not registered before it")
        CASES[id] = Case(
            id,
            rule(rule_id),
            title,
            frozenset(needs),
            fn,
            timeout,
            tuple(after),
            estimate or (lambda target: 0.5),
            last,
        )
        return fn

    return register


def select(cases: Iterable[Case], keywords: list[str], excludes: list[str]) -> list[Case]:
    """`-k` keeps cases whose id or title contains any keyword (case-insensitive), or whose rule
    is the keyword ("5.5") or in its section ("5"); `--exclude` drops cases whose id matches any
    glob. Ordered by rule; a case always comes after the cases it depends on."""
    chosen = []
    for c in cases:
        if keywords and not any(_matches(c, k) for k in keywords):
            continue
        if any(fnmatch.fnmatchcase(c.id, pattern) for pattern in excludes):
            continue
        chosen.append(c)
    return sorted(chosen, key=lambda c: c.rule.key)  # stable: registration order within a rule


def _matches(c: Case, keyword: str) -> bool:
    if re.fullmatch(r"\d+(\.\d+)?", keyword):
        return keyword in (c.rule.id, str(c.rule.section))
    return keyword.lower() in f"{c.id} {c.title}".lower()
