"""`notify-harness browser`: run a page's notification client in headless Chromium against the
client rules of docs/contract.md (section 7), playing its server.

Without --client-url the check starts redis-server and the reference server, and loads the
reference page (/app/) with a token in its URL; with --client-url it loads that page, routes
its socket at the contract's path wherever it points, and answers it as a scripted server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from browser_check.browser import BrowserMissing, find_chromium
from browser_check.checks import CHECKS, LiveServer, Options
from browser_check.runner import run_checks, write_report
from notify_client.driver import Driver
from notify_contract.redaction import leak_line, redact
from notify_contract.rules import Level
from notify_contract.settings import DEFAULTS
from notify_contract.tokens import Minter
from notify_contract.verdicts import Verdict
from notify_reports.folder import redacted
from notify_stack.stack import (
    ServerHandle,
    StackError,
    free_port,
    redis_server,
    scratch_dir,
    start_server,
)

SECRET = "client-check-secret-0123456789-0123456789-0123456789"
PAGE_USER = "client-check-page"
OUR_SIGN_OUT = "#sign-out"
OUR_TOKEN_HOOK = "setNotifyToken"


class ReferenceLive(LiveServer):
    """The reference server behind our page, on Redis so that a restart keeps the history."""

    def __init__(self, log_dir: Path, settings: dict[str, str], port: int) -> None:
        self.user = PAGE_USER
        self.log_dir = log_dir
        self.settings = settings
        self.port = port
        self.handle: ServerHandle | None = None
        self.admin = Minter(SECRET).mint("client-check-admin", admin=True)

    def boot(self) -> ServerHandle:
        self.handle = start_server(self.log_dir, self.settings, port=self.port)
        return self.handle

    async def publish(self, title: str) -> str:
        if self.handle is None:
            raise RuntimeError("the server is not running")
        driver = Driver(self.handle.base, self.admin)
        try:
            stored = await driver.publish(self.user, title)
        finally:
            await driver.aclose()
        return str(stored["id"])

    async def kill(self) -> None:
        if self.handle is not None:
            self.handle.process.popen.kill()
            await asyncio.to_thread(self.handle.process.popen.wait, 10)

    async def start(self) -> None:
        await asyncio.to_thread(self.boot)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.process.stop()


@contextlib.contextmanager
def reference_page(heartbeat: float) -> Iterator[tuple[str, ReferenceLive]]:
    """redis-server and the reference server; the page's URL with a token in it."""
    with scratch_dir("client-check-") as logs, redis_server(logs) as redis:
        settings = {
            "JWT_SECRET": SECRET,
            "REDIS_URL": redis.url,
            "WS_HEARTBEAT_INTERVAL": f"{heartbeat:g}",
        }
        live = ReferenceLive(logs, settings, free_port())
        handle = live.boot()
        try:
            token = Minter(SECRET).mint(PAGE_USER, ttl=3600)
            yield f"{handle.base}/app/?token={token}&heartbeat={heartbeat:g}", live
        finally:
            live.stop()


def parser(prog: str = "python -m browser_check") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0].strip("`").split(": ", 1)[1],
        epilog="examples: %(prog)s; %(prog)s --client-url 'http://127.0.0.1:3000/?token=T' "
        "--heartbeat-interval 30 --sign-out-selector '#logout' --token-hook setToken",
    )
    p.add_argument(
        "--client-url",
        metavar="URL",
        help="the page to check, with whatever it needs to sign in in its URL (e.g. ?token=T)",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=float,
        default=DEFAULTS.heartbeat_interval,
        metavar="S",
        help="the server's heartbeat interval the page assumes (default %(default)g s)",
    )
    p.add_argument(
        "--sign-out-selector",
        metavar="CSS",
        help=f"the page's sign-out control (default for the reference page: {OUR_SIGN_OUT})",
    )
    p.add_argument(
        "--token-hook",
        metavar="FUNCTION",
        help="a global function of the page that hands its client a new token, as a token "
        f"refresh does (default for the reference page: {OUR_TOKEN_HOOK})",
    )
    p.add_argument("-k", dest="keywords", action="append", default=[], help="checks to run")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="where to write")
    p.add_argument(
        "--allow-not-run", action="store_true", help="a MUST check that could not run passes"
    )
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    return p


def main(argv: list[str] | None = None, prog: str = "python -m browser_check") -> int:
    args = parser(prog).parse_args(argv)
    checks = [
        c for c in CHECKS.values() if not args.keywords or any(k in c.id for k in args.keywords)
    ]
    if args.list:
        for c in checks:
            print(f"{c.label:<34} {c.rule.level.value:<6} {c.title}")
        return 0
    if not checks:
        print(f"{prog}: no check matches -k {' '.join(args.keywords)}", file=sys.stderr)
        return 2
    if args.heartbeat_interval <= 0:
        print(f"{prog}: --heartbeat-interval must be above 0", file=sys.stderr)
        return 2
    try:
        chromium = find_chromium()
    except BrowserMissing as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    created = datetime.now(UTC)
    out = args.reports / f"browser-{created.strftime('%Y%m%dT%H%M%SZ')}"
    out.mkdir(parents=True, exist_ok=True)
    options = Options(heartbeat_ms=1000 * args.heartbeat_interval)
    try:
        with contextlib.ExitStack() as stack:
            if args.client_url is None:
                url, live = stack.enter_context(reference_page(args.heartbeat_interval))
                options.live = live
                options.sign_out_selector = args.sign_out_selector or OUR_SIGN_OUT
                options.token_hook = args.token_hook or OUR_TOKEN_HOOK
                shown = "the reference page (/app/)"
            else:
                url, shown = args.client_url, redact(args.client_url)
                options.sign_out_selector = args.sign_out_selector
                options.token_hook = args.token_hook
            results = asyncio.run(run_checks(url, checks, options, chromium, out))
    except StackError as exc:
        print(f"{prog}: could not start the reference server: {exc}", file=sys.stderr)
        return 2
    meta: dict[str, Any] = {
        "page": shown,
        "created": created.isoformat(),
        "command": shlex.join(
            [*prog.split(), *redacted(argv if argv is not None else sys.argv[1:])]
        ),
        "chromium": str(chromium.path),
        "chromium_source": chromium.source,
    }
    where = write_report(out, results, meta)
    counts = ", ".join(f"{sum(r.verdict is v for r in results)} {v.value}" for v in Verdict)
    failed = [r for r in results if r.must_fail]
    not_run = [
        r for r in results if r.verdict is Verdict.NOT_RUN and r.check.rule.level is Level.MUST
    ]
    print(f"report: {where}")
    leaked = leak_line(out)
    if leaked is not None:
        print(f"result: {leaked}")
        return 1
    if failed:
        print(f"result: a MUST is broken ({counts}): " + ", ".join(r.check.id for r in failed))
        return 1
    if not_run and not args.allow_not_run:
        print(
            f"result: {len(not_run)} MUST check(s) could not run ({counts}): "
            + ", ".join(r.check.id for r in not_run)
            + "; give what they need, or --allow-not-run"
        )
        return 1
    print(f"result: no MUST broken ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
