"""The reads writers start from: a task or a run by id, or the API's 404. (Reads for display live
in selectors.py.)"""
from __future__ import annotations

import socket
from uuid import UUID

from django.core.exceptions import ValidationError

from tasks_app.exceptions import RunNotFound, TaskNotFound
from tasks_app.models import Run, Task


HOSTNAME = socket.gethostname()


def get_task(task_id: str) -> Task:
    try:
        return Task.objects.get(pk=task_id)
    except Task.DoesNotExist:
        raise TaskNotFound(f"Task {task_id!r} does not exist.") from None


def get_run(run_id: UUID | str) -> Run:
    try:
        return Run.objects.select_related("task").get(pk=run_id)
    except (Run.DoesNotExist, ValueError, ValidationError):  # a malformed id is just as unknown
        raise RunNotFound(f"Run {run_id} does not exist (or was removed by retention).") from None
