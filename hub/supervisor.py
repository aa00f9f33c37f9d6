"""Stand-in for merge: the status of the hub's background tasks, read from the bare task list.

The real supervisor (another branch) restarts failed tasks; this one only reports them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

TaskState = Literal["running", "restarting", "done", "stopped"]


@dataclass(frozen=True, slots=True)
class TaskStatus:
    name: str
    state: TaskState
    since: float
    restarts: int
    last_error: str | None


class Supervisor:
    def __init__(self, tasks: list[asyncio.Task[None]]) -> None:
        self.tasks = tasks
        self.started = time.time()

    def status(self) -> dict[str, TaskStatus]:
        out = {}
        for task in self.tasks:
            state: TaskState = "running"
            error = None
            if task.cancelled():
                state = "stopped"
            elif task.done():
                exc = task.exception()
                state, error = ("restarting", repr(exc)) if exc else ("done", None)
            out[task.get_name()] = TaskStatus(task.get_name(), state, self.started, 0, error)
        return out
