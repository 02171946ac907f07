"""Reads shared by the API, the admin, the command line and the consumers."""
from __future__ import annotations

from collections.abc import Iterable

from django.db.models import OuterRef, Subquery

from tasks_app.models import Run, RunStatus, Task


def task_status(task: Task) -> str:
    """running while a run runs, queued while one waits, error if the latest ended run failed, else idle."""
    return task_statuses([task])[task.pk]


def task_statuses(tasks: Iterable[Task]) -> dict[str, str]:
    """The status of many tasks in two queries, whatever their number."""
    ids = [task.pk for task in tasks]
    statuses = {task_id: "idle" for task_id in ids}
    # order_by(): without it the model's ordering joins the DISTINCT and reads every run of the task.
    active = Run.objects.filter(task_id__in=ids).active().order_by().values_list("task_id", "status").distinct()
    for task_id, status in active:
        if status == RunStatus.RUNNING or statuses[task_id] == "idle":
            statuses[task_id] = str(status)
    idle = [task_id for task_id, status in statuses.items() if status == "idle"]
    latest = Run.objects.filter(task_id=OuterRef("pk")).ended().order_by("-created_at").values("status")[:1]
    for task_id, status in Task.objects.filter(pk__in=idle).annotate(latest=Subquery(latest)).values_list("pk", "latest"):
        if status == RunStatus.FAILED:
            statuses[task_id] = "error"
    return statuses


def latest_run(task: Task) -> Run | None:
    return task.runs.order_by("-created_at").first()
