"""`notify-harness`: one command per job, each job's help with an example, one line for a
missing extra, and tokens minted as the jobs mint them."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

import jwt
import psutil
import pytest

from notify_harness import cli


@pytest.mark.parametrize("job", sorted(cli.JOBS))
def test_every_job_has_help_with_an_example(job: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([job, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: notify-harness {job}")
    assert f"notify-harness {job} " in out.split("example", 1)[1]


def test_the_target_options_are_the_same_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    seen = {}
    for job in ("contract", "load", "compare", "faults", "token"):
        with pytest.raises(SystemExit):
            cli.main([job, "--help"])
        out = capsys.readouterr().out
        seen[job] = {flag in out for flag in ("--target-file", "--jwt-secret", "--token-cmd")}
    assert all(found == {True} for found in seen.values()), seen


def test_the_console_script_runs_the_top_level_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "notify_harness", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    for job in cli.JOBS:
        assert f"\n  {job} " in done.stdout


@pytest.mark.parametrize(
    ("argv", "extras"),
    [
        (["contract"], ("server",)),
        (["contract", "--target", "http://127.0.0.1:1"], ()),
        (["contract", "--target-file=t.toml"], ()),
        (["load", "--profile", "smoke"], ("load", "server")),
        (["load", "--target", "http://127.0.0.1:1"], ("load",)),
        (["serve"], ("server",)),
        (["token", "alice"], ()),
        (["contract", "--help"], ()),
    ],
)
def test_a_job_needs_the_server_only_when_it_starts_ours(
    argv: list[str], extras: tuple[str, ...]
) -> None:
    assert cli.needed_extras(cli.JOBS[argv[0]], argv[1:]) == extras


def test_a_missing_extra_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec

    def without_locust(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "locust" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_locust)
    assert cli.main(["load", "--target", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "notify-harness load: needs the 'load' extra (no module 'locust'): "
        "pip install 'ws-notify-harness[load]'"
    ]


def test_an_import_error_deep_in_a_job_still_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_fastapi(argv: list[str] | None = None, prog: str = "") -> int:
        raise ModuleNotFoundError("No module named 'fastapi'", name="fastapi")

    monkeypatch.setattr("notify_stack.playground.main", no_fastapi)
    monkeypatch.setattr(cli, "check_extras", lambda job, argv: None)
    assert cli.main(["serve"]) == 2
    assert "needs the 'server' extra (no module 'fastapi')" in capsys.readouterr().err


def test_token_is_signed_as_the_jobs_sign(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "s" * 32
    assert cli.main(["token", "alice", "--admin", "--jwt-secret", secret, "--ttl", "60"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), secret, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["role"] == "admin"


def test_token_without_a_key_names_what_to_give(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    assert cli.main(["token", "alice"]) == 2
    assert "needs --jwt-secret or --token-cmd" in capsys.readouterr().err
    secret = "e" * 32
    monkeypatch.setenv("JWT_SECRET", secret)  # what the server itself reads
    assert cli.main(["token", "alice"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), secret, algorithms=["HS256"])
    assert claims["sub"] == "alice"


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--token-in", "header"], "--token-in header: the load generator's streams carry"),
        (["--jwt-alg", "HS512"], "--jwt-alg HS512: the load generator signs HS256 only"),
        (["--without", "sse", "--scenario", "sse"], "the target declares no SSE"),
    ],
)
def test_a_load_option_it_cannot_honour_is_refused_in_one_line(
    extra: list[str], said: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["load", "--target", "http://127.0.0.1:9", "--jwt-secret", "s" * 32]
    assert cli.main([*argv, *extra, "--reports", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0], err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_sigterm_stops_everything_the_job_started(tmp_path: Path) -> None:
    """A CI timeout's SIGTERM used to kill the tool at once and leave redis-server, the server
    and nginx running; now the job unwinds as on Ctrl-C, says so, and exits 143."""
    command = [sys.executable, "-m", "notify_harness", "contract", "--reports", str(tmp_path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        started: list[psutil.Process] = []
        try:
            assert proc.stdout is not None and proc.stderr is not None
            said = []
            for line in proc.stdout:  # the stack is up once the tool says so
                said.append(line)
                if line.startswith("stack:"):
                    break
            started = psutil.Process(proc.pid).children(recursive=True)
            assert len(started) >= 3, said  # redis-server, the server, nginx
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 128 + signal.SIGTERM
            assert "stopped by SIGTERM" in proc.stderr.read()
            _, alive = psutil.wait_procs(started, timeout=15)
            assert [p.pid for p in alive] == []
        finally:
            if proc.poll() is None:
                proc.kill()
            for child in started:  # a failing run must not leave them either
                if child.is_running():
                    child.kill()
