"""The suite as a pytest plugin: items per case, verdicts mapped honestly, overridable fixtures.

The runs go through `pytester` in a subprocess, in a directory holding nothing of this project,
against real reference servers (and a broken one)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from contract_tests.pytest_plugin import PytestOutcome, outcome
from contract_tests.registry import CASES
from contract_tests.runner import CaseResult
from notify_contract.verdicts import Verdict
from notify_stack.fixtures import SECRET, Servers
from notify_stack.stack import ServerHandle

BEAT = "0.3"
SHAPES = "-k", "connected-shape or notification-shape or token-missing"


def junit_cases(pytester: pytest.Pytester) -> dict[str, ET.Element]:
    root = ET.parse(pytester.path / "junit.xml").getroot()  # noqa: S314 - our own file
    return {c.get("name", ""): c for c in root.iter("testcase")}


def run(pytester: pytest.Pytester, base: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--notify-target",
        base,
        "--notify-jwt-secret",
        SECRET,
        "--notify-heartbeat-interval",
        BEAT,
        "--junitxml=junit.xml",
        "-rsx",
        *args,
    )


@pytest.fixture(scope="module")
def quick(servers: Servers) -> ServerHandle:
    return servers.start(WS_HEARTBEAT_INTERVAL=BEAT)


def test_off_unless_asked_for(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_own(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_one_item_per_case_with_the_clause_in_its_id(
    pytester: pytest.Pytester, quick: ServerHandle
) -> None:
    result = run(pytester, quick.base, *SHAPES)
    result.assert_outcomes(passed=3)
    assert set(junit_cases(pytester)) == {
        "connected-shape[3.2]",
        "notification-shape[3.1]",
        "token-missing[2.1]",
    }
    assert all(c.get("classname") == "notify-contract" for c in junit_cases(pytester).values())


def test_every_case_is_collected(pytester: pytest.Pytester, quick: ServerHandle) -> None:
    result = run(pytester, quick.base, "--collect-only", "-q")
    assert result.ret == 0
    collected = [line for line in result.outlines if line.startswith("notify-contract::")]
    assert len(collected) == len(CASES)


def test_a_broken_server_fails_with_the_reason_and_the_transcript(
    pytester: pytest.Pytester, servers: Servers
) -> None:
    broken = servers.start(
        module="reference_server.tests.broken_server",
        BROKEN_FAULT="wrong-user",
        WS_HEARTBEAT_INTERVAL=BEAT,
    )
    result = run(pytester, broken.base, "-k", "connected-shape")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*[[]3.2[]] MUST*", "transcript:", "*received*connected*"])
    failure = junit_cases(pytester)["connected-shape[3.2]"].find("failure")
    assert failure is not None and "transcript:" in (failure.text or "")


def test_a_must_case_that_cannot_run_fails_unless_allowed(
    pytester: pytest.Pytester, quick: ServerHandle
) -> None:
    # token-not-in-logs needs the server's log, which this run does not give
    run(pytester, quick.base, "-k", "token-not-in-logs").assert_outcomes(failed=1)
    allowed = run(pytester, quick.base, "-k", "token-not-in-logs", "--notify-allow-not-run")
    allowed.assert_outcomes(skipped=1)
    allowed.stdout.fnmatch_lines(["*[[]1.6[]] MUST not run: needs the server's*--log*"])


def test_the_users_conftest_decides_how_tokens_are_made(
    pytester: pytest.Pytester, quick: ServerHandle
) -> None:
    pytester.makeconftest(
        f"""
        import pytest
        from notify_contract.tokens import Minter

        class Counting(Minter):
            calls = []

            def mint(self, user, *, admin=False, ttl=None):
                self.calls.append(user)
                return super().mint(user, admin=admin, ttl=ttl)

        @pytest.fixture(scope="session")
        def notify_tokens():
            yield Counting({SECRET!r})
            assert Counting.calls, "the suite never asked the user's token source"
            print("user tokens:", len(Counting.calls))
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--notify-target", quick.base, "-k", "connected-shape", "-s"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*user tokens: *"])


def test_an_unreachable_target_is_one_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--notify-target", "http://127.0.0.1:9")
    assert result.ret == 2
    result.stdout.fnmatch_lines(["*notify: http://127.0.0.1:9/api/ws/notifications does not*"])


@pytest.mark.parametrize(
    ("verdict", "level_case", "allowed", "shown"),
    [
        (Verdict.PASS, "connected-shape", False, PytestOutcome.PASSED),
        (Verdict.FAIL, "connected-shape", True, PytestOutcome.FAILED),
        (Verdict.NON_STRICT, "token-query-header-disagree", False, PytestOutcome.XFAILED),
        (Verdict.NOT_RUN, "connected-shape", False, PytestOutcome.FAILED),
        (Verdict.NOT_RUN, "connected-shape", True, PytestOutcome.SKIPPED),
        (Verdict.NOT_RUN, "token-query-header-disagree", False, PytestOutcome.SKIPPED),
    ],
)
def test_verdicts_map_to_outcomes(
    verdict: Verdict, level_case: str, allowed: bool, shown: PytestOutcome
) -> None:
    case = CASES[level_case]
    got, message = outcome(case, CaseResult(case, verdict, "why", 0.0), allowed)
    assert got is shown
    assert verdict is Verdict.PASS or ("why" in message and f"[{case.clause}]" in message)
