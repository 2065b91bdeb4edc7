"""The fault suite's bookkeeping and table, without processes."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify_client.ledger import percentile
from notify_client.target import Target
from notify_contract.tokens import Minter
from notify_contract.verdicts import Verdict
from notify_faults.__main__ import chosen, main, parser
from notify_faults.catalogue import FAULTS
from notify_faults.fleet import WsClient
from notify_faults.hostile import LogFacts, scan_logs
from notify_faults.lab import lab
from notify_faults.ledger import Ledger, Receipts, tally
from notify_faults.load import delivery, under_load
from notify_faults.registry import CI, FULL, Scale
from notify_faults.remote import (
    NEEDS_COMMANDS,
    NEEDS_PROCESSES,
    Control,
    restart,
    still_serves,
    survives,
    target_rows,
)
from notify_faults.restarts import _restart_under_load
from notify_faults.streams import LimitRaceFacts
from notify_faults.table import Row, failures_recorded, markdown, write
from notify_stack.fixtures import SECRET, Servers
from notify_stack.stack import RedisServer, redis_server


def _ledger(**published: list[str]) -> Ledger:
    ledger = Ledger()
    for user, ids in published.items():
        for n, nid in enumerate(ids):
            ledger.acknowledged(user, nid, sent_at=float(n))
    return ledger


def _stream(user: str, *ids: str, at: float = 10.0) -> Receipts:
    r = Receipts(f"{user}-stream", user)
    for nid in ids:
        r.got(nid, at)
    return r


def test_each_stream_owes_every_notification_of_its_user() -> None:
    ledger = _ledger(a=["1", "2", "3"], b=["4"])
    counted = tally(ledger, [_stream("a", "1", "3"), _stream("a", "1", "2", "3"), _stream("b")])
    assert (counted.owed, counted.delivered, counted.lost) == (7, 5, 2)


def test_duplicates_order_and_strangers_are_counted_apart() -> None:
    ledger = _ledger(a=["1", "2", "3"])
    counted = tally(ledger, [_stream("a", "2", "1", "2", "3", "x")])
    assert counted.duplicates == 1
    assert counted.out_of_order == 1
    assert counted.unowed == 1
    assert counted.lost == 0


def test_an_archive_fetch_is_not_a_duplicate_and_is_counted() -> None:
    r = Receipts("s", "a")
    r.got("1", 1.0)
    r.got("1", 2.0, archive=True)  # already had it: skipped
    r.got("2", 2.0, archive=True)
    r.got("2", 3.0)  # the live copy of what the archive gave: skipped
    counted = tally(_ledger(a=["1", "2"]), [r])
    assert (counted.lost, counted.duplicates, counted.from_archive) == (0, 0, 1)
    assert r.overlap == 1


def test_latency_is_first_arrival_minus_send() -> None:
    ledger = _ledger(a=["1", "2"])  # sent at 0.0 and 1.0
    counted = tally(ledger, [_stream("a", "1", "2", at=1.5)])
    assert counted.latencies_ms == (500.0, 1500.0)
    assert percentile(counted.latencies_ms, 0.5) == 500.0  # nearest rank, as every table


@given(
    published=st.lists(st.integers(0, 30), unique=True, max_size=20),
    received=st.lists(st.integers(0, 40), max_size=40),
)
def test_the_tally_adds_up(published: list[int], received: list[int]) -> None:
    ledger = _ledger(u=[str(n) for n in published])
    counted = tally(ledger, [_stream("u", *(str(n) for n in received))])
    distinct = set(received)
    assert counted.delivered + counted.lost == counted.owed == len(published)
    assert counted.duplicates == len(received) - len(distinct)
    assert counted.unowed == len(distinct - set(published))
    assert counted.lost == len(set(published) - distinct)


def test_a_row_fails_on_any_problem_and_the_table_says_why(tmp_path: Path) -> None:
    good = Row("a", "fault", "t", "nothing lost").finish("fine")
    bad = Row("b|c", "hostile", "t", "e")
    bad.check(False, "2 deliveries lost")
    bad.plots.append("b.png")
    bad.finish("saw | this")
    assert (good.outcome, bad.outcome) == (Verdict.PASS, Verdict.FAIL)
    text = markdown([good, bad], {"scope": "ci"}, plot_dir="run")
    assert "| b\\|c |" in text and "saw \\| this **Broken:** 2 deliveries lost" in text
    assert "| n/a | n/a | n/a | pass |" in text
    assert "(run/b.png)" in text
    md, js = write(tmp_path, [good, bad], {"scope": "ci"})
    rows = json.loads(js.read_text())["rows"]
    assert [r["outcome"] for r in rows] == ["pass", "fail"] and md.exists()


def test_the_ci_scope_holds_hostile_input_and_a_restart() -> None:
    hostile, faults = chosen(parser().parse_args(["--scope", "ci"]))
    assert hostile and "server-sigkill" in faults
    assert set(faults) < set(FAULTS)
    _, everything = chosen(parser().parse_args([]))
    assert everything == list(FAULTS)


def test_an_unknown_row_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="unknown row nope"):
        main(["--only", "nope"])
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(f in listed for f in FAULTS)


class Forgetful(WsClient):
    """Reconnects without `last_id` and never asks the archive: what docs/contract.md 5 tells a
    client not to do. The suite must see its losses."""

    async def _session(self, stop: asyncio.Event) -> int | None:
        self.session.last_id = None
        return await super()._session(stop)

    async def _catch_up(self) -> None:
        return None


@pytest.mark.parametrize(("client", "loses"), [(WsClient, False), (Forgetful, True)])
async def test_a_restart_loses_nothing_unless_the_client_forgets(
    tmp_path: Path, client: type[WsClient], loses: bool
) -> None:
    scale = Scale("ci", 30, 30, publish_rate=60, limit_rounds=1, half_open=1, drain=10)
    row = Row("restart", "fault", "a SIGKILL restart", "lost 0")
    with lab(tmp_path / "lab") as the_lab:
        await _restart_under_load(the_lab, scale, tmp_path, row, signal.SIGKILL, 30, client)
    assert row.lost is not None
    assert (row.lost > 0) is loses, row.delivery
    assert row.duplicates == 0


def test_the_log_scan_finds_tokens_secrets_and_traces(tmp_path: Path) -> None:
    secret = "s3cret-" + "k" * 40
    tok = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "server.log").write_text("GET /api/ws/notifications?token=[redacted] 101\n")
    assert scan_logs(clean, secret).outcome is Verdict.PASS
    dirty = tmp_path / "dirty"
    (dirty / "nginx").mkdir(parents=True)
    (dirty / "server.log").write_text(f"token={tok}\nTraceback (most recent call last):\n")
    (dirty / "nginx" / "error.log").write_text(f"secret is {secret}\n")
    row = scan_logs(dirty, secret)
    assert row.outcome is Verdict.FAIL
    assert isinstance(row.facts, LogFacts)
    assert row.facts.findings == {"token": 1, "stack trace": 1, "secret": 1}


def test_fault_rows_are_declared_with_their_title_and_expectation() -> None:
    for declared in FAULTS.values():
        row = declared.row(CI)
        assert row.id == declared.id and row.kind == "fault"
        assert "{" not in row.title and "{" not in row.expected, row.id
    assert FAULTS["server-sigkill"].row(CI).title.endswith(f"{CI.restart_clients} streams")
    assert FAULTS["server-sigkill"].row(FULL).title.endswith(f"{FULL.restart_clients} streams")


def test_a_row_writes_its_typed_facts_to_the_json(tmp_path: Path) -> None:
    row = FAULTS["per-user-limit-race"].row(CI)
    row.facts = LimitRaceFacts(rounds=1, held_per_round=[3], outcomes={"4429": 9, "connected": 3})
    row.finish("one round")
    _, js = write(tmp_path, [row], {"scope": "ci"})
    written = json.loads(js.read_text())["rows"][0]
    assert written["facts"] == {
        "rounds": 1,
        "held_per_round": [3],
        "outcomes": {"4429": 9, "connected": 3},
    }
    assert written["delivery"] is None


async def test_the_network_rows_run_against_a_server_we_did_not_start(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = servers.start(module="examples.partial_server")  # python-websockets, partial
    monkeypatch.setenv("JWT_SECRET", SECRET)  # its driver command signs with it
    driver = f"{sys.executable} -m examples.partial_publish --url ws://127.0.0.1:{example.port}"
    target = Target(example.base, "example", tokens=Minter(SECRET), driver_cmd=driver)
    rows = {r.id: r for r in await target_rows(target, CI, lambda line: None)}
    assert rows["per-user-limit-race"].outcome is Verdict.PASS
    assert rows["still-serves"].outcome is Verdict.PASS  # published through its command
    assert rows["token-alg-none"].outcome is Verdict.PASS
    assert rows["flood-1008"].outcome is Verdict.FAIL  # it has no rate limit
    assert rows["server-sigkill"].outcome is Verdict.NOT_RUN
    assert rows["server-sigkill"].observed == NEEDS_COMMANDS  # no --kill-cmd/--start-cmd given
    assert rows["nginx-reload"].observed == "needs --reload-cmd for the target"
    assert rows["half-open-client"].outcome is Verdict.NOT_RUN
    assert rows["half-open-client"].observed == NEEDS_PROCESSES
    assert rows["origin-allowlist"].outcome is Verdict.NOT_APPLICABLE  # no allowlist declared


async def test_a_target_that_never_delivers_fails_the_row_and_the_run_goes_on(
    servers: Servers,
) -> None:
    """The row that waits for a notification records what it awaited; it does not raise (it
    did: a TimeoutError ended `faults --target` and lost every row already measured)."""
    server = servers.start(
        module="reference_server.tests.broken_server", BROKEN_FAULT="never-deliver"
    )
    target = Target(server.base, "never delivers", tokens=Minter(SECRET))
    row = await still_serves(target)
    assert row.outcome is Verdict.FAIL
    (problem,) = row.problems
    assert problem.startswith("TimeoutError: no `notification` within 10 s; got "), problem
    assert "heartbeat" in problem  # what came instead
    assert "no `notification` within 10 s" in row.observed


async def test_fleet_streams_named_for_another_user_fail_the_row(servers: Servers) -> None:
    server = servers.start(module="reference_server.tests.broken_server", BROKEN_FAULT="wrong-user")
    target = Target(server.base, "wrong user", tokens=Minter(SECRET))
    scale = replace(CI, clients=4, publish_rate=10, drain=5)
    load, clients = await under_load(target, Minter(SECRET), scale, "misnamed")
    counted = await load.finish(scale)
    row = Row("misnamed", "fault", "t", "e")
    delivery(row, load.ledger, counted, clients, time.time())
    row.finish("done")
    assert counted.lost == 0  # delivery alone would have passed it
    assert row.outcome is Verdict.FAIL
    (problem,) = row.problems
    assert problem.startswith("4 of 4 streams misrouted: `connected` named another user"), problem


async def test_a_row_that_raises_or_overruns_is_a_failed_row() -> None:
    raised, slow = Row("a", "fault", "t", "e"), Row("b", "fault", "t", "e")
    async with failures_recorded(raised):
        raise ConnectionResetError("the target closed every stream")
    async with failures_recorded(slow, limit_s=0.05):
        await asyncio.Event().wait()  # a target that stops answering
    assert raised.outcome is Verdict.FAIL
    assert raised.problems == ["ConnectionResetError: the target closed every stream"]
    assert slow.outcome is Verdict.FAIL
    assert slow.problems == ["the row did not finish within 0.05 s"]


def kill_and_wait(pid: int, timeout: float = 10.0) -> str:
    """A shell command: SIGKILL, then wait (at most `timeout` s, then fail) until the process
    has exited (its sockets closed; a zombie holds none). `kill` returns before that, and a
    restart on the same port would race it: Redis started again at once found its port still
    taken ("Address already in use")."""
    alive = f"grep -qsE '^State:[[:space:]]+[^Z[:space:]]' /proc/{pid}/status"
    polls = int(timeout / 0.05)
    return (
        f"kill -9 {pid}; n=0; while {alive}; do n=$((n+1)); "
        f'[ "$n" -le {polls} ] || {{ echo "{pid} alive after {timeout:g} s" >&2; exit 1; }}; '
        "sleep 0.05; done"
    )


async def test_a_target_restarted_by_the_users_commands_loses_nothing(
    servers: Servers, redis: RedisServer, tmp_path: Path
) -> None:
    """The restart row on a target: our server as if it were someone else's, stopped and started
    by shell commands the suite knows nothing about but what they are told to do."""
    server = servers.start(redis=redis, WS_HEARTBEAT_INTERVAL="5")
    pid_file = tmp_path / "server.pid"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in server.env.items() if k.isidentifier())
    start = (
        f"env {env} {shlex.quote(sys.executable)} -m reference_server --host 127.0.0.1 "
        f"--port {server.port} > {tmp_path / 'restarted.log'} 2>&1 & echo $! > {pid_file}"
    )
    control = Control(kill=kill_and_wait(server.process.pid), start=start)
    target = Target(server.base, "restarted", tokens=Minter(SECRET))
    try:
        row = await restart(target, CI, control)
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
    assert row.outcome is Verdict.PASS, row.problems
    assert row.lost == 0 and row.delivery is not None and row.delivery.expected_deliveries > 0
    assert row.recovery_s is not None


async def test_the_restart_row_is_not_run_without_the_commands(servers: Servers) -> None:
    target = Target("http://127.0.0.1:1", "no control", tokens=Minter(SECRET))
    row = await restart(target, CI, Control(kill="true"))
    assert (row.outcome, row.observed) == (Verdict.NOT_RUN, NEEDS_COMMANDS)


async def test_a_targets_redis_restarted_by_the_users_command_closes_no_stream(
    servers: Servers, tmp_path: Path
) -> None:
    """`--redis-restart-cmd` on a target: its Redis (persistent, so the history survives) is
    SIGKILLed and started again on its port by commands the suite only runs."""
    with redis_server(tmp_path, persist=True) as store:
        server = servers.start(redis=store, WS_HEARTBEAT_INTERVAL="1")
        args = store.process.popen.args
        assert isinstance(args, list)
        again = " ".join(shlex.quote(str(a)) for a in args)
        command = (
            f"{kill_and_wait(store.process.pid)}; "
            f"{again} > {tmp_path / 'redis-again.log'} 2>&1 & echo $! > {tmp_path / 'redis.pid'}"
        )
        target = Target(server.base, "redis", tokens=Minter(SECRET))
        try:
            row = await survives(
                target, CI, "redis-restart", "--redis-restart-cmd", command, "had Redis restarted"
            )
        finally:
            pid = tmp_path / "redis.pid"
            if pid.exists():
                os.kill(int(pid.read_text()), signal.SIGTERM)
    assert row.outcome is Verdict.PASS, row.problems
    assert row.lost == 0 and row.delivery is not None and row.delivery.expected_deliveries > 0
