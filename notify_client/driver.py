"""The driver API of docs/contract.md section 1: make a server emit, read its stats and archive.

Each call is described once (`Call`: an action with its arguments, and the HTTP request that
performs it) and sent by one of three transports: asyncio HTTP (`Driver`), blocking HTTP
(`BlockingDriver`, for locust users), or a command of the user's (`CommandDriver`, the suite's
`--driver-cmd`) that gets the action as JSON on stdin.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from notify_contract.protocol import NOTIFICATIONS_PATH, STATS_PATH, TASKS_PATH


class DriverError(Exception):
    """The server (or the driver command) refused a call; the message says how."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Call:
    """One driver action and the HTTP request that performs it."""

    action: str
    args: dict[str, Any]
    method: str
    path: str
    token: str | None
    expected: int
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)
    pick: Callable[[Any], Any] = lambda result: result


# Every field rule 1.1 lists, so that a server is judged on what it does with a whole body (one
# that got only some of them answered with nulls, which hid that it drops unknown fields).
BODY_DEFAULTS: dict[str, Any] = {
    "content": "sent by notify-harness",
    "link": "https://example.invalid/notification",
    "source": "notify-harness",
}


def publish_call(admin: str, user_id: str, title: str, fields: dict[str, Any]) -> Call:
    body = {"user_id": user_id, "title": title, "type": "alert", **BODY_DEFAULTS, **fields}
    return Call("publish", body, "POST", NOTIFICATIONS_PATH, admin, 201, body)


def broadcast_call(admin: str, title: str, fields: dict[str, Any]) -> Call:
    body = {"broadcast": True, "title": title, "type": "system", **BODY_DEFAULTS, **fields}
    return Call("broadcast", body, "POST", NOTIFICATIONS_PATH, admin, 201, body)


def task_call(token: str, total_steps: int, interval_ms: int, fail_at: int | None) -> Call:
    body = {"total_steps": total_steps, "step_interval_ms": interval_ms, "fail_at_step": fail_at}
    return Call(
        "start_task", body, "POST", TASKS_PATH, token, 201, body, pick=lambda r: str(r["task_id"])
    )


def after_call(token: str, after_id: str | None) -> Call:
    params = {} if after_id is None else {"after": after_id}
    return Call(
        "after",
        {"after": after_id},
        "GET",
        NOTIFICATIONS_PATH,
        token,
        200,
        params=params,
        pick=lambda r: r["items"],
    )


def stats_call(token: str | None) -> Call:
    return Call("stats", {}, "GET", STATS_PATH, token, 200)


def auth_header(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def _result(call: Call, response: httpx.Response) -> Any:
    if response.status_code != call.expected:
        raise DriverError(
            f"{call.method} {call.path}: {response.status_code} {response.text[:300]}",
            response.status_code,
        )
    return call.pick(response.json())


class Driver:
    """The driver API over asyncio HTTP, with an admin token for publishing."""

    def __init__(self, base: str, admin_token: str, timeout: float = 10.0) -> None:
        self.http = httpx.AsyncClient(base_url=base, timeout=timeout, trust_env=False)
        self.admin_token = admin_token
        # Called with ("sent" | "received", text) for each call: the suite's transcripts.
        self.record: Callable[[str, str], None] | None = None

    async def do(self, call: Call) -> Any:
        self._note("sent", f"{call.method} {call.path} {json.dumps(call.body or call.params)}")
        response = await self.http.request(
            call.method,
            call.path,
            json=call.body,
            params=call.params,
            headers=auth_header(call.token),
        )
        self._note("received", f"{response.status_code} {response.text}")
        return _result(call, response)

    def _note(self, direction: str, text: str) -> None:
        if self.record is not None:
            self.record(direction, text[:500])

    async def publish(self, user_id: str, title: str = "hello", **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.do(
            publish_call(self.admin_token, user_id, title, fields)
        )
        return result

    async def broadcast(self, title: str = "to everyone", **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.do(broadcast_call(self.admin_token, title, fields))
        return result

    async def start_task(
        self,
        token: str,
        total_steps: int = 5,
        step_interval_ms: int = 50,
        fail_at_step: int | None = None,
    ) -> str:
        return str(await self.do(task_call(token, total_steps, step_interval_ms, fail_at_step)))

    async def after(self, token: str, after_id: str | None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = await self.do(after_call(token, after_id))
        return items

    async def stats(self, token: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.do(stats_call(token or self.admin_token))
        return result

    async def aclose(self) -> None:
        await self.http.aclose()


class BlockingDriver:
    """The driver API over blocking HTTP (locust users run it under gevent); with `command`,
    publishing and tasks go through that command instead (`run_command`)."""

    def __init__(
        self, base: str, admin_token: str, timeout: float = 10.0, command: str | None = None
    ) -> None:
        self.http = httpx.Client(base_url=base, timeout=timeout, trust_env=False)
        self.admin_token = admin_token
        self.command = command
        self.timeout = timeout

    def do(self, call: Call) -> Any:
        if self.command and call.action in COMMAND_ACTIONS:
            return run_command(self.command, call, max(self.timeout, 30.0))
        response = self.http.request(
            call.method,
            call.path,
            json=call.body,
            params=call.params,
            headers=auth_header(call.token),
        )
        return _result(call, response)

    def publish(self, user_id: str, title: str = "hello", **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.do(publish_call(self.admin_token, user_id, title, fields))
        return result

    def broadcast(self, title: str = "to everyone", **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.do(broadcast_call(self.admin_token, title, fields))
        return result

    def stats(self, token: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.do(stats_call(token or self.admin_token))
        return result

    def close(self) -> None:
        self.http.close()


EXIT_UNSUPPORTED = 3  # a driver command's "this target cannot do that action"


class DriverUnsupported(DriverError):
    """The driver command said the target cannot do this action (exit 3)."""


COMMAND_ACTIONS = frozenset({"publish", "broadcast", "start_task"})


def run_command(
    command: str, call: Call, timeout: float, note: Callable[[str, str], None] | None = None
) -> Any:
    """One call through the user's command: `{"action": ..., ...args}` on stdin, JSON out.

    Exit 0 with JSON on stdout: done; exit 3: the target does not support the action; any
    other exit: the call failed. `start_task` also gets the owner's `token`.
    """
    owner = {"token": call.token} if call.action == "start_task" else {}
    request = json.dumps({"action": call.action, **call.args, **owner})
    if note is not None:
        note("sent", f"--driver-cmd {request}")
    proc = subprocess.run(
        shlex.split(command),
        input=request,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if note is not None:
        note("received", f"exit {proc.returncode}: {proc.stdout}{proc.stderr}")
    if proc.returncode == EXIT_UNSUPPORTED:
        said = (proc.stdout + proc.stderr).strip()[-300:]
        raise DriverUnsupported(f"driver: unsupported `{call.action}` ({said or 'exit 3'})")
    if proc.returncode != 0:
        raise DriverError(f"--driver-cmd exited {proc.returncode}: {proc.stderr[-300:]}")
    try:
        return call.pick(json.loads(proc.stdout))
    except (ValueError, KeyError, TypeError) as exc:
        raise DriverError(f"--driver-cmd printed no usable JSON: {proc.stdout[:300]!r}") from exc


class CommandDriver(Driver):
    """Publishing and tasks through the user's command (`run_command`); stats and the archive
    still go over HTTP."""

    def __init__(self, base: str, admin_token: str, command: str, timeout: float = 30.0) -> None:
        super().__init__(base, admin_token)
        self.command = command
        self.timeout = timeout

    async def do(self, call: Call) -> Any:
        if call.action not in COMMAND_ACTIONS:
            return await super().do(call)
        return await asyncio.to_thread(run_command, self.command, call, self.timeout, self._note)
