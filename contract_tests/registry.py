"""Cases of the contract suite: each cites a numbered rule of docs/contract.md, takes its grade
(MUST or SHOULD) from that rule, and is graded like a conformance suite (pass, non-strict,
fail, not applicable, not run)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from notify_contract.rules import Level, Rule, rule
from notify_contract.verdicts import Need

if TYPE_CHECKING:
    from contract_tests.context import Context
from notify_client.target import Target

__all__ = ["CASES", "Case", "case", "select"]


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
