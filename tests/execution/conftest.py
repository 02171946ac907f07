"""Helpers of the execution tests: a trigger as the API makes it, and whether a worker still lives."""
from __future__ import annotations

import os
from typing import Any

from tasks_app import services
from tasks_app.models import Run, RunTrigger, Task


def trigger(task: Task, **kwargs: Any) -> Run:
    return services.trigger(task, source=RunTrigger.API, requested_by="key:test", **kwargs)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed worker may linger as a zombie until its parent reaps it.
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split(")")[-1].split()[0] != "Z"
