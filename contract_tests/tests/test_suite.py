"""The contract suite itself: it passes the reference server, fails broken variants by the case
that names the fault, grades what it cannot run as "not run" (and a rule the target does not take
on as "not applicable"), and writes its report."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract_tests import report
from contract_tests.__main__ import main as suite_main
from contract_tests.__main__ import parser
from contract_tests.context import TRANSCRIPT_ENDS, Context, Shared
from contract_tests.registry import CASES, Case, select
from contract_tests.runner import Pace, RunResult, _reason, run_case, run_target
from notify_client.options import OptionError, resolve
from notify_client.target import Target
from notify_contract.rules import rule
from notify_contract.settings import Limits
from notify_contract.tokens import Minter
from notify_contract.verdicts import Need, Verdict
from notify_reports.folder import redacted
from notify_stack.fixtures import SECRET, Servers
from notify_stack.stack import ServerHandle, free_port

BEAT = "0.3"
HISTORY = 20
ROOT = Path(__file__).resolve().parents[2]


def target(server: ServerHandle, label: str) -> Target:
    return Target(
        server.base,
        label,
        tokens=Minter(SECRET),
        limits=Limits(heartbeat_interval=float(BEAT), history_size=HISTORY),
        logs=(server.process.log_path,),
    )


def broken(servers: Servers, fault: str) -> ServerHandle:
    return start(servers, "reference_server.tests.broken_server", fault)


def start(servers: Servers, module: str = "reference_server", fault: str = "") -> ServerHandle:
    """A server with a quick heartbeat, a short send queue and history (the suite knows them)."""
    return servers.start(
        module=module,
        WS_HEARTBEAT_INTERVAL=BEAT,
        WS_SEND_QUEUE="16",
        WS_HISTORY_SIZE=str(HISTORY),
        BROKEN_FAULT=fault,
    )


async def run(t: Target, *ids: str) -> RunResult:
    return await run_target(t, [CASES[i] for i in ids], progress=lambda line: None)


@pytest.fixture(scope="module")
def healthy(servers: Servers) -> ServerHandle:
    return start(servers)


FAULTS = [
    ("leak", "fanout-isolation"),
    ("no-limit", "limit-4429"),
    ("frame-shape", "notification-shape"),
    ("no-heartbeat", "heartbeat-cadence"),
    ("slow-heartbeat", "heartbeat-cadence"),
    ("task-no-heartbeat", "task-heartbeat"),
    ("ended-task-open", "task-forbidden-4403"),
    ("broadcast-one-per-user", "broadcast-reaches-everyone"),
    ("resume-skips-broadcasts", "resume-replay-broadcast"),
    ("any-role-admin", "http-token-checks"),
    ("http-ignores-exp", "http-token-checks"),
    ("task-broadcast", "task-no-cross-talk"),
    ("log-token", "token-not-in-logs"),
    ("slow-4409", "slow-consumer-4408"),
    ("driver-200", "driver-publish"),
    ("archive-newest", "resume-resync"),
    ("wrong-user", "connected-shape"),
    # The example faulty server's faults, one at a time.
    ("one-user", "connected-shape"),
    ("refuse-403", "token-missing"),
    ("binary-kills-loop", "binary-frame-1003"),
    ("no-resume", "resume-replay"),
    ("sse-silent", "sse-notification"),
]


@pytest.mark.parametrize("fault", ["", "log-token-on-refusal"])
async def test_the_log_is_scanned_for_every_token_of_the_run(servers: Servers, fault: str) -> None:
    """A token logged by an earlier case (a 4429 refusal) is found by the scan that runs last,
    whatever order the cases were given in."""
    server = broken(servers, fault) if fault else start(servers)
    result = await run(target(server, fault or "reference"), "token-not-in-logs", "limit-4429")
    verdicts = {r.case.id: r for r in result.results}
    assert [r.case.id for r in result.results] == ["limit-4429", "token-not-in-logs"]
    scan = verdicts["token-not-in-logs"]
    if not fault:
        assert scan.verdict is Verdict.PASS, scan.reason
        return
    assert verdicts["limit-4429"].verdict is Verdict.PASS
    assert scan.verdict is Verdict.FAIL
    assert "tokens in the logs" in scan.reason, scan.reason


@pytest.mark.parametrize(("fault", "case_id"), FAULTS, ids=[f for f, _ in FAULTS])
async def test_the_case_that_names_a_fault_catches_it(
    servers: Servers, healthy: ServerHandle, fault: str, case_id: str
) -> None:
    broken = servers.start(
        module="reference_server.tests.broken_server",
        BROKEN_FAULT=fault,
        WS_HEARTBEAT_INTERVAL=BEAT,
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
    admin = Minter(SECRET).mint("driver", admin=True)
    t = replace(t, driver_cmd=f"{sys.executable} {script} {admin}")
    result = await run(t, "fanout-every-stream-once-in-order", "task-progress-completed")
    assert [r.verdict for r in result.results] == [Verdict.PASS, Verdict.PASS]


def test_selection_by_keyword_and_exclude_glob() -> None:
    ids = [c.id for c in select(CASES.values(), ["task"], ["task-*-4*"])]
    assert "task-progress-completed" in ids
    assert "task-forbidden-4403" not in ids and "task-unknown-4404" not in ids
    assert all("task" in i or "task" in CASES[i].title for i in ids)
    ordered = [c.rule.key for c in select(CASES.values(), [], [])]
    assert ordered == sorted(ordered)
    assert [c.id for c in select(CASES.values(), ["5.5"], [])] == ["limit-4429", "limit-slot-frees"]


async def test_report_files(servers: Servers, tmp_path: Path) -> None:
    broken = servers.start(
        module="reference_server.tests.broken_server",
        BROKEN_FAULT="leak",
        WS_HEARTBEAT_INTERVAL=BEAT,
    )
    result = await run(target(broken, "leaky"), "fanout-isolation", "ping-pong", "origin-allowlist")
    meta = {"created": "2026-01-01T00:00:00+00:00", "command": "test"}
    out = report.write(tmp_path / "r", [result], meta)
    data = json.loads((out / "index.json").read_text())
    verdicts = {c["id"]: c["verdict"] for c in data["runs"][0]["cases"]}
    assert verdicts == {
        "fanout-isolation": "fail",
        "ping-pong": "pass",
        "origin-allowlist": "not applicable",  # no allowlist declared
    }
    assert data["failed"] is True
    failed = next(c for c in data["runs"][0]["cases"] if c["verdict"] == "fail")
    assert any(e["direction"] == "received" for e in failed["transcript"])
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")  # noqa: S314 - our own file
    assert suite is not None and suite.get("failures") == "1" and suite.get("skipped") == "1"
    html = (out / "index.html").read_text()
    assert "A MUST is broken" in html and "fanout-isolation" in html and "received" in html
    # Rule 1.6 holds for this toolkit's own files: no token the run used is in any of them.
    leaked = [
        (p.name, who)
        for p in out.rglob("*")
        if p.is_file()
        for tok, who in result.minted.items()
        if tok.rsplit(".", 1)[-1] in p.read_text(errors="replace")
    ]
    assert result.minted and leaked == []


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
    page = "http://127.0.0.1:3000/?%74oken=eyJ.a.b&x=1"
    assert redacted(["--client-url", page]) == [
        "--client-url",
        "http://127.0.0.1:3000/?%74oken=[redacted]&x=1",
    ]


def test_bad_command_lines_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert suite_main(["--target", "ftp://x", "--reports", str(tmp_path)]) == 2
    assert "--target must be an http" in capsys.readouterr().err
    assert suite_main(["-k", "no-such-case", "--reports", str(tmp_path)]) == 2


async def test_a_proxy_timeout_below_the_heartbeat_is_named(servers: Servers) -> None:
    slow_beat = servers.start(WS_HEARTBEAT_INTERVAL="5", WS_PING_INTERVAL="600")
    proxy = servers.proxy(slow_beat, read_timeout="1s")
    beat = Limits(heartbeat_interval=5.0)
    t = Target(proxy.base, "nginx", tokens=Minter(SECRET), limits=beat, idle_hold=3.0)
    result = await run(t, "idle-stream-survives")
    assert result.results[0].verdict is Verdict.FAIL
    assert "proxy read timeout shorter than the heartbeat" in result.results[0].reason


async def test_a_case_that_depends_on_a_failed_one_is_not_run(servers: Servers) -> None:
    result = await run(
        target(broken(servers, "no-limit"), "no-limit"), "limit-4429", "limit-slot-frees"
    )
    verdicts = [(r.verdict, r.reason) for r in result.results]
    assert verdicts[0][0] is Verdict.FAIL
    assert verdicts[1] == (Verdict.NOT_RUN, "needs limit-4429, which failed")


async def test_a_driver_that_answers_200_fails_its_case_and_leaves_musts_not_run(
    servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = broken(servers, "driver-200")
    argv = ["--target", server.base, "--jwt-secret", SECRET, "--reports", str(tmp_path)]
    code = await asyncio.to_thread(suite_main, [*argv, "-k", "driver-publish", "-k", "fanout"])
    out = capsys.readouterr().out
    assert code == 1
    assert "fail       [1.1] driver-publish" in out
    assert "not run    [5.3] fanout-isolation" in out
    assert (
        "result: a MUST is broken (0 pass, 0 non-strict, 1 fail, 0 not applicable, 2 not run)"
        in out
    )


async def test_must_cases_that_did_not_run_fail_the_run_unless_allowed(
    healthy: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--target",
        healthy.base,
        "--reports",
        str(tmp_path),
        "-k",
        "token-missing",
        "-k",
        "1.5",
    ]
    assert await asyncio.to_thread(suite_main, argv) == 1
    assert "1 MUST case(s) could not run" in capsys.readouterr().out
    assert await asyncio.to_thread(suite_main, [*argv, "--allow-not-run"]) == 0
    assert (
        "result: no MUST broken (1 pass, 0 non-strict, 0 fail, 0 not applicable, 1 not run)"
        in capsys.readouterr().out
    )


def test_an_unreachable_target_is_one_error_and_exit_2_within_10_s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    argv = ["--target", f"http://127.0.0.1:{free_port()}", "--jwt-secret", SECRET]
    assert suite_main([*argv, "--reports", str(tmp_path)]) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not answer" in err[0] and "ConnectionRefusedError" in err[0]


def test_a_target_that_is_not_a_websocket_server_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class NotFound(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{web.server_address[1]}"
        assert suite_main(["--target", base, "--reports", str(tmp_path)]) == 2
    finally:
        web.shutdown()
        web.server_close()
    assert "is not a WebSocket endpoint: the handshake got HTTP 404" in capsys.readouterr().err


async def test_declared_missing_parts_are_not_applicable_with_the_reason(
    healthy: ServerHandle,
) -> None:
    t = target(healthy, "no sse")
    t = replace(t, without=frozenset({Need.SSE, Need.TASKS}))
    result = await run(t, "sse-headers", "task-unknown-4404", "ping-pong")
    assert [r.verdict for r in result.results] == [
        Verdict.NOT_APPLICABLE,
        Verdict.NOT_APPLICABLE,
        Verdict.PASS,
    ]
    assert "declares it has no sse" in result.results[0].reason


async def test_a_driver_command_may_say_unsupported(healthy: ServerHandle, tmp_path: Path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(
        "import json, sys, httpx\n"
        "req = json.load(sys.stdin)\n"
        "if req.pop('action') == 'start_task':\n"
        "    print('this target has no tasks'); sys.exit(3)\n"
        f"r = httpx.post('{healthy.base}/api/notifications', json=req,\n"
        "               headers={'Authorization': 'Bearer ' + sys.argv[1]})\n"
        "print(r.text)\n"
    )
    t = target(healthy, "cmd")
    t = replace(
        t, driver_cmd=f"{sys.executable} {script} {Minter(SECRET).mint('driver', admin=True)}"
    )
    result = await run(t, "task-progress-completed", "fanout-isolation")
    assert [r.verdict for r in result.results] == [Verdict.NOT_APPLICABLE, Verdict.PASS]
    assert result.results[0].reason == (
        "driver: unsupported `start_task` (this target has no tasks)"
    )


def _should_case(body: Callable[[Context], Awaitable[None]]) -> Case:
    return Case("probe", rule("2.2"), "a SHOULD probe", frozenset(), body, 5.0, (), lambda t: 0)


async def test_a_should_case_is_non_strict_only_for_the_outcome_it_names() -> None:
    shared = Shared(Target("http://127.0.0.1:1", "offline"))

    async def proxy_refusal(ctx: Context) -> None:
        ctx.should(False, "refused with HTTP 414")

    async def hangs(ctx: Context) -> None:
        raise TimeoutError("no `connected` within 5 s; got nothing")

    noted = await run_case(_should_case(proxy_refusal), shared, {})
    assert (noted.verdict, noted.reason) == (Verdict.NON_STRICT, "refused with HTTP 414")
    timed_out = await run_case(_should_case(hangs), shared, {})
    assert timed_out.verdict is Verdict.FAIL
    assert timed_out.reason == "timed out: no `connected` within 5 s; got nothing"


def test_a_must_case_cannot_downgrade_itself() -> None:
    ctx = Context(Shared(Target("http://127.0.0.1:1", "offline")), frozenset())
    with pytest.raises(TypeError, match="use must"):
        ctx.should(False, "anything")


async def test_fix_first_groups_failures_by_their_first_check(servers: Servers) -> None:
    wrong = target(broken(servers, "wrong-user"), "wrong-user")
    ids = ("connected-shape", "fanout-isolation", "limit-4429", "ping-pong", "token-missing")
    result = await run(wrong, *ids)
    groups = report.fix_first([result])
    assert len(groups) == 1 and len(groups[0].cases) == 4  # every case that opens a stream
    assert groups[0].check == "`connected` names user '…', not '…'"
    assert "1. 4 case(s): `connected` names user" in report.fix_first_text([result])
    assert [r.verdict for r in result.results if r.case.id == "token-missing"] == [Verdict.PASS]


def test_the_target_file_and_the_command_line(tmp_path: Path) -> None:
    file = tmp_path / "target.toml"
    file.write_text(
        '[target]\nurl = "http://127.0.0.1:9"\njwt_secret = "s"\nwithout = ["sse"]\n'
        "heartbeat_interval = 2\n"
    )
    args = parser().parse_args(["--target-file", str(file), "--heartbeat-interval", "0.5"])
    t = resolve(args)
    assert (t.base, t.limits.heartbeat_interval, t.without) == (
        "http://127.0.0.1:9",
        0.5,
        frozenset({Need.SSE}),
    )
    assert isinstance(t.tokens, Minter)
    file.write_text('[target]\nurl = "http://x"\nheartbeat = 2\n')
    with pytest.raises(OptionError, match=r"unknown key.*heartbeat"):
        resolve(parser().parse_args(["--target-file", str(file)]))
    with pytest.raises(OptionError, match=r"--without chat: known parts are archive, sse"):
        resolve(parser().parse_args(["--without", "tasks,chat"]))
    file.write_text('[target]\nurl = "http://x"\nlog = ["server.log"]\n')  # the flag's name
    logs = resolve(parser().parse_args(["--target-file", str(file)])).logs
    assert logs == (Path("server.log"),)


async def test_a_partial_server_on_another_stack_is_graded_by_its_target_file(
    servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = servers.start(module="examples.partial_server")  # python-websockets, not ours
    file = tmp_path / "partial.toml"
    declared = (ROOT / "examples" / "partial.toml").read_text()
    file.write_text(declared.replace("127.0.0.1:8765", f"127.0.0.1:{example.port}"))
    ids = ["fanout-isolation", "limit-4429", "resume-replay", "sse-headers", "task-error"]
    ids += ["stats-access", "archive-after", "driver-publish", "token-16kb"]
    argv = ["--target-file", str(file), "--jwt-secret", SECRET, "--reports", str(tmp_path)]
    environ = {"JWT_SECRET": SECRET, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        code = await asyncio.to_thread(suite_main, [*argv, *(a for i in ids for a in ("-k", i))])
    out = capsys.readouterr().out
    assert code == 1
    verdicts = {
        case: verdict
        for verdict, case in re.findall(
            r"(pass|fail|not applicable|not run|non-strict)\s+\[[\d.]+\] ([\w-]+)", out
        )
    }
    assert verdicts == {
        "driver-publish": "not applicable",  # no HTTP driver API: it publishes by its command
        "archive-after": "not applicable",  # declared missing
        "token-16kb": "non-strict",  # its HTTP parser refuses the long request line: 414
        "fanout-isolation": "pass",  # published through --driver-cmd
        "task-error": "not applicable",
        "limit-4429": "pass",
        "resume-replay": "fail",  # it does not resume, and cannot declare that away
        "resume-replay-broadcast": "fail",  # (-k resume-replay selects both)
        "stats-access": "not applicable",
        "sse-headers": "not applicable",
    }


async def test_the_readme_ci_command_passes_the_reference_server_with_default_settings(
    servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's CI job (target, secret, heartbeat, log) and nothing else: no allowlist and no
    compression configured, so those rules are not applicable, and the run exits 0 without
    --allow-not-run (it exited 1, "2 MUST cases could not run")."""
    server = servers.start(WS_HEARTBEAT_INTERVAL=BEAT)  # the interval only: the run's length
    argv = ["--target", server.base, "--jwt-secret", SECRET, "--heartbeat-interval", BEAT]
    argv += ["--log", str(server.process.log_path), "--reports", str(tmp_path)]
    code = await asyncio.to_thread(suite_main, argv)
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert re.search(
        r"result: no MUST broken \(\d+ pass, 0 non-strict, 0 fail, 2 not applicable", out
    )
    assert "not applicable [11.1] origin-allowlist" in out
    assert "not applicable [4.4] compressed-frame-1009" in out


def fix_first_of(reports: Path) -> list[dict[str, Any]]:
    (index,) = reports.glob("contract-*/index.json")
    groups: list[dict[str, Any]] = json.loads(index.read_text())["fix_first"]
    return groups


async def test_fix_first_groups_the_faulty_server_by_cause(
    servers: Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example faulty server (six faults, BROKEN_FAULT=faulty): every case ends in a verdict,
    the run exits 1, and "fix first" has a group per cause, not per case's wording (it had 15
    groups, 13 of them one cause: bad tokens refused with HTTP 403 before accept)."""
    server = broken(servers, "faulty")
    argv = ["--target", server.base, "--jwt-secret", SECRET, "--heartbeat-interval", BEAT]
    argv += ["--log", str(server.process.log_path), "--reports", str(tmp_path)]
    code = await asyncio.to_thread(suite_main, argv)
    out = capsys.readouterr().out
    assert code == 1 and "Traceback" not in out
    groups = {g["example"]: len(g["cases"]) for g in fix_first_of(tmp_path)}
    assert len(groups) <= 6, groups
    refused = [n for example, n in groups.items() if "refused with HTTP 403" in example]
    assert refused == [9], groups  # every bad-token case, one group
    assert any("`connected` names user 'user'" in example for example in groups), groups


def test_a_long_transcript_keeps_its_ends_and_counts_the_rest() -> None:
    ctx = Context(Shared(Target("http://127.0.0.1:9", "t")), frozenset())
    for n in range(5782):  # the frames of a slow consumer that read for a minute
        ctx.note("s1", "received", f"frame {n}")
    kept = ctx.transcript
    assert len(kept) == 2 * TRANSCRIPT_ENDS + 1
    assert kept[0].text == "frame 0" and kept[-1].text == "frame 5781"
    assert kept[TRANSCRIPT_ENDS].text == f"{5782 - 2 * TRANSCRIPT_ENDS} entries left out"
    short = Context(Shared(Target("http://127.0.0.1:9", "t")), frozenset())
    short.note("s1", "sent", "ping")
    assert [e.text for e in short.transcript] == ["ping"]


async def test_sse_streams_carry_the_token_where_the_target_takes_it(healthy: ServerHandle) -> None:
    """--token-in header reaches the SSE cases too (they sent ?token= whatever it said)."""
    t = target(healthy, "header")
    t = replace(t, token_in="header")
    result = await run(t, "sse-notification", "sse-task-stream", "sse-heartbeat")
    assert [r.verdict for r in result.results] == [Verdict.PASS] * 3, [
        r.reason for r in result.results
    ]


def test_the_time_left_follows_the_pace_measured_so_far() -> None:
    pace = Pace()
    assert pace.scale(90.0) == 90.0  # nothing measured yet: the estimate
    pace.done(planned=60.0, spent=0.6)  # a target that failed every case at once
    assert pace.scale(90.0) == pytest.approx(4.5)  # never below a twentieth
    slow = Pace()
    slow.done(planned=10.0, spent=20.0)
    assert slow.scale(30.0) == pytest.approx(60.0)


def test_an_http_error_says_which_request_it_ended() -> None:
    request = httpx.Request("GET", "http://127.0.0.1:9/api/notifications?after=x")
    said = _reason(httpx.ReadTimeout("", request=request), CASES["archive-after"])
    assert said == "ReadTimeout: no answer in time (GET /api/notifications)"


async def test_a_run_in_which_every_case_is_not_applicable_shows_nothing_and_fails(
    healthy: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not applicable never blocks a pass, but a run of nothing but it has shown nothing."""
    argv = ["--target", healthy.base, "--jwt-secret", SECRET, "--without", "sse"]
    argv += ["-k", "sse-", "--reports", str(tmp_path)]
    code = await asyncio.to_thread(suite_main, argv)
    out = capsys.readouterr().out
    assert code == 1, out[-2000:]
    assert "result: no case ran against the target (0 pass, 0 non-strict, 0 fail, 5 not " in out
