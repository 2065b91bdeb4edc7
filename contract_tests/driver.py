"""The driver API of CONTRACT.md section 1: make a server emit, read its stats and archive."""

from __future__ import annotations

from typing import Any

import httpx

from reference_server.protocol import NOTIFICATIONS_PATH, STATS_PATH, TASKS_PATH


class DriverError(Exception):
    """The server refused a driver call; the message has the status and body."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
        self.status = response.status_code


class Driver:
    """HTTP calls with an admin token (publishing) or a user's token (tasks, archive)."""

    def __init__(self, base: str, admin_token: str, timeout: float = 10.0) -> None:
        self.http = httpx.AsyncClient(base_url=base, timeout=timeout, trust_env=False)
        self.admin_token = admin_token

    @staticmethod
    def auth(token: str | None) -> dict[str, str]:
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    async def _json(self, response: httpx.Response, expected: int) -> Any:
        if response.status_code != expected:
            raise DriverError(response)
        return response.json()

    async def publish(self, user_id: str, title: str = "hello", **fields: Any) -> dict[str, Any]:
        body = {"user_id": user_id, "title": title, "type": "alert", **fields}
        r = await self.http.post(NOTIFICATIONS_PATH, json=body, headers=self.auth(self.admin_token))
        result: dict[str, Any] = await self._json(r, 201)
        return result

    async def broadcast(self, title: str = "to everyone", **fields: Any) -> dict[str, Any]:
        body = {"broadcast": True, "title": title, "type": "system", **fields}
        r = await self.http.post(NOTIFICATIONS_PATH, json=body, headers=self.auth(self.admin_token))
        result: dict[str, Any] = await self._json(r, 201)
        return result

    async def start_task(
        self,
        token: str,
        total_steps: int = 5,
        step_interval_ms: int = 50,
        fail_at_step: int | None = None,
    ) -> str:
        body = {
            "total_steps": total_steps,
            "step_interval_ms": step_interval_ms,
            "fail_at_step": fail_at_step,
        }
        r = await self.http.post(TASKS_PATH, json=body, headers=self.auth(token))
        return str((await self._json(r, 201))["task_id"])

    async def after(self, token: str, after_id: str | None) -> list[dict[str, Any]]:
        params = {} if after_id is None else {"after": after_id}
        r = await self.http.get(NOTIFICATIONS_PATH, params=params, headers=self.auth(token))
        items: list[dict[str, Any]] = (await self._json(r, 200))["items"]
        return items

    async def stats(self, token: str | None = None) -> dict[str, Any]:
        r = await self.http.get(STATS_PATH, headers=self.auth(token or self.admin_token))
        result: dict[str, Any] = await self._json(r, 200)
        return result

    async def aclose(self) -> None:
        await self.http.aclose()
