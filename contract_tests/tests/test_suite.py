"""The contract suite itself: it passes the reference server, fails broken variants by the case
that names the fault, grades what it cannot run as "not run", and writes its report."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from contract_tests import report
from contract_tests.__main__ import main as suite_main
from contract_tests.__main__ import redacted
from contract_tests.context import SecretTokens, Target
from contract_tests.registry import CASES, Need, Verdict, select
from contract_tests.runner import RunResult, run_target
from reference_server.stack import ServerHandle
from reference_server.tests.fixtures import SECRET, Servers

BEAT = "0.3"


def target(server: ServerHandle, label: str) -> Target:
    return Target(
        server.base,
        label,
        tokens=SecretTokens(SECRET),
        heartbeat_interval=float(BEAT),
        logs=(server.process.log_path,),
    )


async def run(t: Target, *ids: str) -> RunResult:
    return await run_target(t, [CASES[i] for i in ids], progress=lambda line: None)


@pytest.fixture(scope="module")
def healthy(servers: Servers) -> ServerHandle:
    return servers.start(WS_HEARTBEAT_INTERVAL=BEAT)


FAULTS = [
    ("leak", "fanout-isolation"),
    ("no-limit", "limit-4429"),
    ("frame-shape", "notification-shape"),
    ("no-heartbeat", "heartbeat-cadence"),
    ("task-broadcast", "task-no-cross-talk"),
    ("log-token", "token-not-in-logs"),
]


@pytest.mark.parametrize(("fault", "case_id"), FAULTS, ids=[f for f, _ in FAULTS])
async def test_the_case_that_names_a_fault_catches_it(
    servers: Servers, healthy: ServerHandle, fault: str, case_id: str
) -> None:
    broken = servers.start(
        module="contract_tests.tests.broken_server", BROKEN_FAULT=fault, WS_HEARTBEAT_INTERVAL=BEAT
    )
    caught = await run(target(broken, fault), case_id)
    assert caught.results[0].verdict is Verdict.FAIL, caught.results[0].reason
    assert caught.results[0].transcript  # the report can show what was seen
    control = await run(target(healthy, "reference"), case_id)
    assert control.results[0].verdict is Verdict.PASS, control.results[0].reason


async def test_without_tokens_cases_are_not_run_never_passed(healthy: ServerHandle) -> None:
    bare = Target(healthy.base, "no tokens")
    result = await run_target(bare, list(CASES.values()), progress=lambda line: None)
    for r in result.results:
        if r.case.needs & {Need.TOKENS, Need.SECRET, Need.DRIVER, Need.DRIVER_HTTP}:
            assert r.verdict is Verdict.NOT_RUN, r.case.id
            assert "--jwt-secret" in r.reason or "--token-cmd" in r.reason
    ran = {r.case.id: r.verdict for r in result.results if r.verdict is not Verdict.NOT_RUN}
    assert ran == {
        i: Verdict.PASS
        for i in (
            "token-missing",
            "token-malformed",
            "token-wrong-key",
            "token-alg-none",
            "token-hs256-public-key",
        )
    }


async def test_a_driver_command_publishes_instead_of_the_api(
    healthy: ServerHandle, tmp_path: Path
) -> None:
    script = tmp_path / "driver.py"
    script.write_text(
        "import json, sys, httpx\n"
        "req = json.load(sys.stdin)\n"
        "action = req.pop('action')\n"
        "h = {'Authorization': 'Bearer ' + req.pop('token', sys.argv[1])}\n"
        "path = '/api/tasks' if action == 'start_task' else '/api/notifications'\n"
        f"r = httpx.post('{healthy.base}' + path, json=req, headers=h)\n"
        "print(r.text)\n"
    )
    t = target(healthy, "cmd")
    admin = SecretTokens(SECRET).mint("driver", admin=True)
    t.driver_cmd = f"{sys.executable} {script} {admin}"
    result = await run(t, "fanout-every-stream-once-in-order", "task-progress-completed")
    assert [r.verdict for r in result.results] == [Verdict.PASS, Verdict.PASS]


def test_selection_by_keyword_and_exclude_glob() -> None:
    ids = [c.id for c in select(CASES.values(), ["task"], ["task-*-4*"])]
    assert "task-progress-completed" in ids
    assert "task-forbidden-4403" not in ids and "task-unknown-4404" not in ids
    assert all("task" in i or "task" in CASES[i].title for i in ids)
    assert [c.clause for c in select(CASES.values(), [], [])] == sorted(
        (c.clause for c in CASES.values()), key=int
    )


async def test_report_files(servers: Servers, tmp_path: Path) -> None:
    broken = servers.start(
        module="contract_tests.tests.broken_server", BROKEN_FAULT="leak", WS_HEARTBEAT_INTERVAL=BEAT
    )
    result = await run(target(broken, "leaky"), "fanout-isolation", "ping-pong", "stats-public")
    meta = {"created": "2026-01-01T00:00:00+00:00", "command": "test"}
    out = report.write(tmp_path / "r", [result], meta)
    data = json.loads((out / "index.json").read_text())
    verdicts = {c["id"]: c["verdict"] for c in data["runs"][0]["cases"]}
    assert verdicts == {"fanout-isolation": "fail", "ping-pong": "pass", "stats-public": "not run"}
    assert data["failed"] is True
    failed = next(c for c in data["runs"][0]["cases"] if c["verdict"] == "fail")
    assert any(e["direction"] == "received" for e in failed["transcript"])
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")  # noqa: S314 - our own file
    assert suite is not None and suite.get("failures") == "1" and suite.get("skipped") == "1"
    html = (out / "index.html").read_text()
    assert "A MUST is broken" in html and "fanout-isolation" in html and "received" in html


def test_the_secret_is_not_written_to_the_report() -> None:
    assert redacted(["--target", "http://x", "--jwt-secret", "s3cret", "-k", "task"]) == [
        "--target",
        "http://x",
        "--jwt-secret",
        "[redacted]",
        "-k",
        "task",
    ]
    assert redacted(["--jwt-secret=s3cret"]) == ["--jwt-secret=[redacted]"]


def test_bad_command_lines_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert suite_main(["--target", "ftp://x", "--reports", str(tmp_path)]) == 2
    assert "--target must be an http" in capsys.readouterr().err
    assert suite_main(["-k", "no-such-case", "--reports", str(tmp_path)]) == 2


async def test_a_proxy_timeout_below_the_heartbeat_is_named(servers: Servers) -> None:
    slow_beat = servers.start(WS_HEARTBEAT_INTERVAL="5", WS_PING_INTERVAL="600")
    proxy = servers.proxy(slow_beat, read_timeout="1s")
    t = Target(
        proxy.base, "nginx", tokens=SecretTokens(SECRET), heartbeat_interval=5.0, idle_hold=3.0
    )
    result = await run(t, "idle-stream-survives")
    assert result.results[0].verdict is Verdict.FAIL
    assert "proxy read timeout shorter than the heartbeat" in result.results[0].reason
