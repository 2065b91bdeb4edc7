"""The built wheel, installed outside this checkout: the base install checks a server started
from the same wheel's `[server]` extra, by the command line and by the pytest plugin, and holds
neither the server's stack nor locust."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from contract_tests.registry import CASES
from notify_stack.fixtures import BASE_SETTINGS, SECRET, Servers
from notify_stack.managed import ALLOWED_ORIGIN, MANAGED
from notify_stack.stack import ServerHandle, start_server

ROOT = Path(__file__).resolve().parents[2]
BAD = ("failure", "error", "skipped")
HEAVY = ("fastapi", "uvicorn", "starlette", "locust", "redis", "pydantic_settings")


def knows(served: ServerHandle, prefix: str = "--") -> list[str]:
    """The target options that tell the suite the settings the server was started with."""
    return [
        f"{prefix}heartbeat-interval={MANAGED['WS_HEARTBEAT_INTERVAL']}",
        f"{prefix}history-size={MANAGED['WS_HISTORY_SIZE']}",
        f"{prefix}allowed-origin={ALLOWED_ORIGIN}",
        f"{prefix}log={served.process.log_path}",
    ]


def sh(*argv: str | Path, cwd: Path | None = None, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# uv installs in seconds what pip takes most of a minute for; either checks the same wheel.
UV = shutil.which("uv")


def venv(where: Path, *requirements: str) -> Path:
    """A fresh virtual environment with `requirements`; its bin directory."""
    sh(sys.executable, "-m", "venv", where)
    python = where / "bin" / "python"
    if UV:
        sh(UV, "pip", "install", "-q", "--python", python, *requirements)
    else:
        sh(python, "-m", "pip", "install", "-q", *requirements)
    return where / "bin"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    installer = ["--installer", "uv"] if UV else []
    sh(sys.executable, "-m", "build", "--wheel", *installer, "--outdir", out, ROOT)
    (built,) = out.glob("ws_notify_harness-*.whl")
    return built


@pytest.fixture(scope="module")
def checker(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base install, and pytest for the plugin."""
    return venv(tmp_path_factory.mktemp("base") / "venv", str(wheel), "pytest")


@pytest.fixture(scope="module")
def served(wheel: Path, servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> ServerHandle:
    """The reference server run by the wheel's `[server]` install, not by this checkout."""
    bin_ = venv(tmp_path_factory.mktemp("server") / "venv", f"{wheel}[server]")
    handle = start_server(servers.log_dir, {**BASE_SETTINGS, **MANAGED}, python=bin_ / "python")
    servers.started.append(handle)  # stopped with the others
    return handle


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory that holds nothing of this project."""
    assert not any(tmp_path.iterdir())
    return tmp_path


def test_the_base_install_has_no_server_stack_and_no_locust(checker: Path) -> None:
    found = sh(
        checker / "python",
        "-c",
        f"import importlib.util as u; print([m for m in {HEAVY!r} if u.find_spec(m)])",
    )
    assert found.strip() == "[]"


def test_the_wheel_runs_from_its_own_files(
    served: ServerHandle, checker: Path, outside: Path
) -> None:
    python = Path(str(served.process.popen.args[0]))  # type: ignore[index]
    code = (
        "import reference_server as r, nginx_conf as n; "
        "print(r, n, len(n.render(n.NginxConfig('/tmp', 1, ('127.0.0.1:2',)))))"
    )
    where = sh(python, "-c", code, cwd=outside)  # the nginx template is package data too
    assert str(ROOT) not in where and "site-packages" in where
    data = "import notify_contract.document as d; print(len(d.asyncapi()['channels']))"
    assert int(sh(checker / "python", "-c", data, cwd=outside)) >= 4


def test_notify_harness_contract_checks_the_server(
    served: ServerHandle, checker: Path, outside: Path
) -> None:
    out = sh(
        checker / "notify-harness",
        "contract",
        "--target",
        served.base,
        "--jwt-secret",
        SECRET,
        *knows(served),
        cwd=outside,
    )
    assert f"{len(CASES)} pass, 0 non-strict, 0 fail, 0 not applicable, 0 not run" in out
    assert (outside / "reports").is_dir()


def test_a_job_that_needs_an_extra_says_which(checker: Path, outside: Path) -> None:
    done = subprocess.run(
        [checker / "notify-harness", "load", "--target", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        cwd=outside,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "notify-harness load: needs the 'load' extra (no module 'locust'): "
        "pip install 'ws-notify-harness[load]'"
    ]


def test_the_pytest_plugin_runs_every_case_with_junit(
    served: ServerHandle, checker: Path, outside: Path
) -> None:
    sh(
        checker / "pytest",
        "-p",
        "no:cacheprovider",
        "--notify-target",
        served.base,
        "--notify-jwt-secret",
        SECRET,
        *knows(served, "--notify-"),
        "--junitxml=junit.xml",
        cwd=outside,
    )
    root = ET.parse(outside / "junit.xml").getroot()  # noqa: S314 - our own file
    cases = list(root.iter("testcase"))
    assert len(cases) == len(CASES)
    # (an Element without children is falsy: compare with None)
    bad = [c.get("name") for c in cases for tag in BAD if c.find(tag) is not None]
    assert not bad, "every case passes against the reference server"
