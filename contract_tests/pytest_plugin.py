"""The contract suite inside a user's own pytest run (entry point `pytest11`, off by default).

`pytest --notify-target URL --notify-jwt-secret S` adds one item per case of docs/contract.md,
named `notify-contract::<case>[<rule>]`. Verdicts map honestly: fail fails, with the case's
transcript; a broken SHOULD is xfailed with its reason; a case that could not run is skipped with
its reason, but a MUST case that could not run fails unless `--notify-allow-not-run`.

Override these fixtures in a conftest to tell the suite how to reach the server:
`notify_tokens` (an object with `mint(user, *, admin=False, ttl=None) -> str`) and
`notify_driver` (a `notify_client.driver.Driver`, or None to use the driver API or
`--notify-driver-cmd`).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
from dataclasses import replace
from enum import StrEnum
from pathlib import Path

import pytest
from _pytest._code.code import TerminalRepr

from contract_tests.context import Shared
from contract_tests.registry import CASES, Case
from contract_tests.report import transcript_text
from contract_tests.runner import CaseResult, TargetUnusable, prepare, run_case
from notify_client.driver import Driver
from notify_client.options import OPTIONS, OptionError, resolve
from notify_client.target import Target, TokenSource
from notify_contract.rules import Level
from notify_contract.verdicts import Verdict

SUITE = "notify-contract"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("notify", "the notification contract suite (docs/contract.md)")
    group.addoption("--notify-target-file", metavar="FILE", help="a TOML target file")
    for o in OPTIONS:
        flag = "--notify-target" if o.name == "url" else "--notify-" + o.name.replace("_", "-")
        if o.kind is bool:
            group.addoption(flag, dest=f"notify_{o.name}", action="store_const", const=True)
        elif o.name == "logs":
            group.addoption("--notify-log", dest="notify_logs", action="append", help=o.help)
        else:
            group.addoption(flag, dest=f"notify_{o.name}", metavar=o.metavar, help=o.help)
    group.addoption(
        "--notify-allow-not-run",
        action="store_true",
        help="a MUST case that could not run is skipped instead of failed",
    )


def _declared(config: pytest.Config) -> Target | None:
    """The target as the options declare it, or None when the suite was not asked for."""
    if config.getoption("notify_url") is None and config.getoption("notify_target_file") is None:
        return None
    file = config.getoption("notify_target_file")
    args = argparse.Namespace(
        target_file=Path(file) if file else None,
        **{o.name: config.getoption(f"notify_{o.name}") for o in OPTIONS},
    )
    try:
        declared = resolve(args)
    except OptionError as exc:
        raise pytest.UsageError(f"notify: {exc}") from None
    if declared.url is None:
        raise pytest.UsageError("notify: the target file gives no url; add --notify-target URL")
    return declared


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "notify_contract: a case of the notification contract")
    config.stash[DECLARED] = _declared(config)


DECLARED = pytest.StashKey[Target | None]()
RUN = pytest.StashKey["SuiteRun"]()


class SuiteRun:
    """One event loop and one `Shared` for every case of the session, as the command line has."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.shared: Shared | None = None
        self.done: dict[str, CaseResult] = {}

    def start(self, target: Target, driver: Driver | None) -> Shared:
        if self.shared is None:
            try:
                self.shared = self.runner.run(prepare(target, driver))
            except TargetUnusable as exc:
                pytest.exit(f"notify: {exc}", returncode=2)
        return self.shared

    def run(self, case: Case) -> CaseResult:
        if self.shared is None:
            raise RuntimeError("SuiteRun.start first")
        result = self.runner.run(run_case(case, self.shared, self.done))
        self.done[case.id] = result
        return result

    def close(self) -> None:
        if self.shared is not None and self.shared.driver is not None:
            self.runner.run(self.shared.driver.aclose())
        self.runner.close()


class CaseFailure(Exception):
    """A case's failure, shown as its reason and transcript rather than a traceback."""

    def __init__(self, result: CaseResult, text: str) -> None:
        super().__init__(text)
        self.result = result


class CaseItem(pytest.Function):
    """A contract case as a pytest item: a Function, so fixtures (and overrides) apply."""

    case: Case

    def repr_failure(  # type: ignore[override]  # Function drops Node's `style`
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, CaseFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{SUITE}: {self.case.label} {self.case.title}"


class Suite(pytest.Collector):
    """The virtual collector the items hang from (no file holds them)."""

    def collect(self) -> list[pytest.Item]:
        items: list[pytest.Item] = []
        ordered = sorted(CASES.values(), key=lambda c: c.last)  # stable: `last` cases at the end
        for c in ordered:
            item = CaseItem.from_parent(self, name=f"{c.id}[{c.clause}]", callobj=_check)
            item.case = c
            item.add_marker(pytest.mark.notify_contract)
            items.append(item)
        return items


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect, so they apply to ours too
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if config.stash[DECLARED] is not None:
        items.extend(Suite.from_parent(session, name=SUITE, nodeid=SUITE).collect())


@pytest.fixture(scope="session")
def notify_options(pytestconfig: pytest.Config) -> Target:
    """The target as the options declare it (command line over target file over defaults)."""
    declared = pytestconfig.stash[DECLARED]
    if declared is None:
        pytest.skip("the notification contract suite needs --notify-target or a target file")
    return declared


@pytest.fixture(scope="session")
def notify_tokens(notify_options: Target) -> TokenSource | None:
    """How the suite gets tokens; override to mint them your way."""
    return notify_options.tokens


@pytest.fixture(scope="session")
def notify_driver() -> Driver | None:
    """How the suite publishes; None: the driver API, or --notify-driver-cmd. Override with a
    `notify_client.driver.Driver` subclass (its `do(call)`) to publish your way."""
    return None


@pytest.fixture(scope="session")
def notify_target(notify_options: Target, notify_tokens: TokenSource | None) -> Target:
    return replace(notify_options, tokens=notify_tokens)


@pytest.fixture(scope="session")
def notify_run(
    notify_target: Target, notify_driver: Driver | None
) -> Iterator[tuple[SuiteRun, Shared]]:
    run = SuiteRun()
    try:
        yield run, run.start(notify_target, notify_driver)
    finally:
        run.close()


class PytestOutcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    XFAILED = "xfailed"
    SKIPPED = "skipped"


def outcome(case: Case, result: CaseResult, allow_not_run: bool) -> tuple[PytestOutcome, str]:
    """How a verdict shows in pytest, and the message it shows with."""
    where = f"[{case.clause}] {case.level.value}"
    if result.verdict is Verdict.FAIL:
        lines = [f"{where} {case.title}: {result.reason}"]
        if result.transcript:
            lines += ["transcript:", transcript_text(result)]
        return PytestOutcome.FAILED, "\n".join(lines)
    if result.verdict is Verdict.NON_STRICT:
        return PytestOutcome.XFAILED, f"{where} not met (non-strict): {result.reason}"
    if result.verdict is Verdict.NOT_APPLICABLE:
        return PytestOutcome.SKIPPED, f"{where} not applicable: {result.reason}"
    if result.verdict is Verdict.NOT_RUN:
        if case.level is Level.MUST and not allow_not_run:
            return PytestOutcome.FAILED, (
                f"{where} case could not run, so the rule is not shown to hold: {result.reason} "
                "(give what it needs, or --notify-allow-not-run)"
            )
        return PytestOutcome.SKIPPED, f"{where} not run: {result.reason}"
    return PytestOutcome.PASSED, ""


def _check(request: pytest.FixtureRequest, notify_run: tuple[SuiteRun, Shared]) -> None:
    item = request.node
    if not isinstance(item, CaseItem):
        raise TypeError("a notify-contract item only")
    run, _ = notify_run
    result = run.run(item.case)
    item.user_properties += [("clause", item.case.clause), ("verdict", result.verdict.value)]
    if result.transcript:
        item.add_report_section("call", "transcript", transcript_text(result))
    shown, message = outcome(item.case, result, item.config.getoption("notify_allow_not_run"))
    if shown is PytestOutcome.FAILED:
        raise CaseFailure(result, message)
    if shown is PytestOutcome.XFAILED:
        pytest.xfail(message)
    if shown is PytestOutcome.SKIPPED:
        pytest.skip(message)
