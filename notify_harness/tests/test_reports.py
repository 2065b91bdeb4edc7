"""Every HTML report goes through the one renderer: what a target or a page said (a frame, a
reason, a label, a file name) shows as text in each of them, never as markup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jinja2 import UndefinedError

from browser_check.checks import CHECKS
from browser_check.runner import CheckResult, write_report
from contract_tests import report as contract_report
from contract_tests.context import Entry
from contract_tests.registry import CASES
from contract_tests.runner import CaseResult, RunResult
from loadtests import compare
from loadtests import report as load_report
from loadtests.compare import ModeRun
from loadtests.figures import Figures
from notify_client.target import Target
from notify_contract.verdicts import Verdict
from notify_reports.render import render

SAID = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def contract_page() -> str:
    case = CASES["ping-pong"]
    said = CaseResult(case, Verdict.FAIL, SAID, 0.1, [Entry(0.0, SAID, "received", SAID)])
    run = RunResult(Target("http://127.0.0.1:9", SAID), [said], 0.0, 0.2, SAID)
    return contract_report.to_html([run], {"created": SAID, "command": SAID})


def load_page() -> str:
    data: dict[str, Any] = {
        "config": {"scenario": SAID},
        "created": SAID,
        "thresholds": [{"ok": False, "text": SAID}],
        "command": SAID,
        "budget": [SAID],
        "environment": {SAID: SAID},
    }
    figures = Figures(latency_measured_from=SAID)
    return load_report.html(data, figures, [(f"{SAID}.png", SAID)])


def compare_page(out: Path) -> str:
    results = [ModeRun(SAID, 10, error=SAID)]
    compare.write(out, results, {"created": SAID, "command": SAID})
    return (out / "report.html").read_text()


def browser_page(out: Path) -> str:
    said = CheckResult(CHECKS["token-change"], Verdict.FAIL, SAID, 0.1, f"{SAID}.png")
    meta = {"page": SAID, "command": SAID, "created": SAID}
    return write_report(out, [said], meta).read_text()


def test_every_html_report_escapes_what_the_target_said(tmp_path: Path) -> None:
    pages = {
        "contract": contract_page(),
        "load": load_page(),
        "compare": compare_page(tmp_path),
        "browser": browser_page(tmp_path),
    }
    for name, page in pages.items():
        assert SAID not in page, name
        assert ESCAPED in page, name
        assert page.startswith("<!doctype html>"), name


def test_a_template_given_no_value_for_a_name_fails_rather_than_writing_a_blank() -> None:
    with pytest.raises(UndefinedError):
        render("loadtests", "run.html", scenario="fanout")
