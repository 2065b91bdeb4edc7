"""Runs the client checks against one page in headless Chromium, each in a fresh browser
context, grades each, takes a screenshot at its end, and writes the report."""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, async_playwright
from playwright.async_api import Error as PlaywrightError

from browser_check.browser import Chromium
from browser_check.lab import CheckPage
from browser_check.registry import ClientCheck, Options, Requires
from notify_contract.redaction import redact
from notify_contract.rules import Level
from notify_contract.verdicts import CaseFailed, NotRun, Verdict
from notify_reports.render import render

CHECK_TIMEOUT = 90.0  # real seconds; the fake clock makes minutes of policy take a few


@dataclass
class CheckResult:
    check: ClientCheck
    verdict: Verdict
    observed: str
    duration: float
    screenshot: str | None = None
    sockets: list[dict[str, Any]] = field(default_factory=list)

    @property
    def must_fail(self) -> bool:
        return self.verdict is Verdict.FAIL and self.check.rule.level is Level.MUST


def missing(check: ClientCheck, options: Options) -> str | None:
    if Requires.SIGN_OUT in check.needs and options.sign_out_selector is None:
        return "needs the page's sign-out control: give --sign-out-selector CSS"
    if Requires.TOKEN_HOOK in check.needs and options.token_hook is None:
        return "needs the page's token hook: give --token-hook FUNCTION"
    if Requires.LIVE in check.needs and options.live is None:
        return "needs a server the check starts and kills (not run with --client-url)"
    return None


async def run_one(
    browser: Browser, check: ClientCheck, url: str, options: Options, out: Path
) -> CheckResult:
    why = missing(check, options)
    if why is not None:
        return CheckResult(check, Verdict.NOT_RUN, why, 0.0)
    started = time.monotonic()
    context = await browser.new_context(viewport={"width": 1000, "height": 560})
    page = await context.new_page()
    lab = CheckPage(page, check.script, check.archive, late_close=check.late_close)
    verdict, observed, shot = Verdict.FAIL, "", None
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await lab.open(url)
            observed = await check.run(lab, options)
        verdict = Verdict.NON_STRICT if lab.notes else Verdict.PASS
        if lab.notes:
            observed = f"{observed}; " + "; ".join(lab.notes)
    except CaseFailed as exc:
        observed = str(exc)
    except NotRun as exc:
        verdict, observed = Verdict.NOT_RUN, str(exc)
    except TimeoutError as exc:
        observed = f"timed out after {CHECK_TIMEOUT:g} s: {exc}" if str(exc) else "timed out"
    except PlaywrightError as exc:
        observed = f"the browser failed: {exc.message.splitlines()[0]}"
    except Exception as exc:  # the check's own bug: a fail that says so, the run goes on
        observed = f"the check itself failed: {type(exc).__name__}: {exc}"
        lab.errors.append(traceback.format_exc(limit=3))
    if lab.errors:
        verdict, observed = Verdict.FAIL, "the check's own script failed: " + "; ".join(lab.errors)
    sockets: list[dict[str, Any]] = []
    try:
        sockets = [vars(s) for s in (await lab.probe()).sockets]
        path = out / f"{check.id}.png"
        await page.screenshot(path=str(path))
        shot = path.name
    except (PlaywrightError, RuntimeError):
        pass
    await lab.aclose()
    await context.close()
    return CheckResult(
        check, verdict, observed, round(time.monotonic() - started, 2), shot, sockets
    )


async def run_checks(
    url: str,
    checks: list[ClientCheck],
    options: Options,
    chromium: Chromium,
    out: Path,
    progress: Callable[[str], None] = print,
) -> list[CheckResult]:
    results = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium.path))
        try:
            progress(f"== client check: {len(checks)} checks in Chromium from {chromium.source}")
            for n, check in enumerate(checks, 1):
                result = await run_one(browser, check, url, options, out)
                results.append(result)
                progress(
                    f"  {n:>3}/{len(checks)} {result.verdict.value:<10} {check.label} "
                    f"({result.duration:.1f}s)  {result.observed[:240]}"
                )
        finally:
            await browser.close()
    return results


def write_report(out: Path, results: list[CheckResult], meta: dict[str, Any]) -> Path:
    rows = [
        {
            "id": r.check.id,
            "rule": r.check.rule.id,
            "level": r.check.rule.level.value,
            "title": r.check.title,
            "expected": r.check.expected,
            "verdict": r.verdict.value,
            "observed": r.observed,
            "duration_s": r.duration,
            "screenshot": r.screenshot,
            "sockets": r.sockets,
        }
        for r in results
    ]
    # The page's sockets carry its token in their URLs: no file of the report keeps one.
    text = json.dumps({"meta": meta, "checks": rows}, indent=2)
    (out / "results.json").write_text(redact(text))
    chromium = meta.get("chromium_source", meta.get("chromium", "?"))
    page = render("browser_check", "report.html", meta=meta, rows=rows, chromium=chromium)
    (out / "index.html").write_text(redact(page))
    return out / "index.html"
