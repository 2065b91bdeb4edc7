"""Simulated analysis tasks: they make the task streams of docs/contract.md section 5 move."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from reference_server.bus import Bus
from reference_server.records import task_failed, task_step

log = logging.getLogger("reference_server.tasks")


class TaskRunner:
    """Runs each task as one asyncio task that publishes a step per interval."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._jobs: set[asyncio.Task[None]] = set()

    async def start(
        self, owner: str, total_steps: int, step_interval_ms: int, fail_at_step: int | None
    ) -> str:
        task_id = uuid.uuid4().hex
        await self._bus.task_create(task_id, owner)
        job = asyncio.create_task(
            self._run(task_id, total_steps, step_interval_ms / 1000, fail_at_step),
            name=f"task-{task_id}",
        )
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return task_id

    async def _run(self, task_id: str, total: int, interval: float, fail_at: int | None) -> None:
        try:
            for step in range(1, total + 1):
                await asyncio.sleep(interval)
                if step == fail_at:
                    event = task_failed(task_id, step, total, f"analysis failed at step {step}")
                    await self._bus.task_event(task_id, event)
                    return
                message = "analysis complete" if step == total else f"analysing ({step}/{total})"
                await self._bus.task_event(task_id, task_step(task_id, step, total, message))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task %s stopped", task_id)

    async def stop(self) -> None:
        for job in list(self._jobs):
            job.cancel()
        for job in list(self._jobs):
            with contextlib.suppress(asyncio.CancelledError):
                await job
