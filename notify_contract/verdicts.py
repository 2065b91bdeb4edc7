"""The words every judge grades in: a verdict per case or row, what a case needs from a target,
and the exceptions a check raises to say which verdict it earned.

They live below every tool (the contract suite, the browser check, the load and fault tools)
so that none imports another for them."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FEATURES", "CaseFailed", "Need", "NotApplicable", "NotRun", "Verdict"]


class Verdict(StrEnum):
    PASS = "pass"
    NON_STRICT = "non-strict"  # the outcome a SHOULD rule names was seen
    FAIL = "fail"  # a MUST was broken, or a case could not finish
    # A conditional rule the target does not take on (an allowlist it has not configured,
    # compression off, a part of the API it declares absent): never blocks a pass.
    NOT_APPLICABLE = "not applicable"
    NOT_RUN = "not run"  # the case could run if the user gave something (a log, a command)


class Need(StrEnum):
    """What a case needs from the target; a missing one makes the case "not run"."""

    TOKENS = "tokens"  # any valid user and admin tokens
    SECRET = "secret"  # tokens with chosen claims (expired, short-lived, no `sub`)
    DRIVER = "driver"  # a way to make the server publish and start tasks
    DRIVER_HTTP = "driver-http"  # the HTTP driver API itself
    LOGS = "logs"  # log files of the server or its proxy
    ORIGIN = "origin"  # an Origin the target allows (none given: it has no allowlist)
    # Parts of the API a target may declare it lacks (--without): "not applicable", not "fail".
    TASKS = "tasks"
    SSE = "sse"
    STATS = "stats"
    ARCHIVE = "archive"


FEATURES = (Need.TASKS, Need.SSE, Need.STATS, Need.ARCHIVE)


class CaseFailed(Exception):
    """A MUST was broken; the message says which and what was seen."""


class NotRun(Exception):
    """The case could not run against this target; the message says why."""


class NotApplicable(Exception):
    """The target does not take on the case's rule (a feature it has off); the message says
    which, and how to declare it on if it is."""
