"""The event outbox: every state change of a run (and every definition change) writes one row.

Rows are written inside the transaction that makes the change, so an event exists exactly when
its change committed. Web processes read new rows to feed SSE and WebSocket clients; an SSE
client resumes from its Last-Event-ID because the id is the row's primary key.
"""
from __future__ import annotations

from typing import Any

from tasks_app import clock
from tasks_app.models import Event, EventName, Run, RunStatus, Task

#: The event a run's end writes, by its final status.
END_EVENTS: dict[str, str] = {
    RunStatus.COMPLETED: EventName.COMPLETED,
    RunStatus.FAILED: EventName.ERROR,
    RunStatus.CANCELLED: EventName.CANCELLED,
    RunStatus.SKIPPED: EventName.SKIPPED,
}


def emit_run_event(name: str, run: Run, *, message: str = "") -> Event:
    """One event about a run, carrying what a live view needs without another query."""
    now = clock.now()
    data: dict[str, Any] = {
        "task_id": run.task_id,
        "run_id": str(run.id),
        "timestamp": now.isoformat(),
        "status": run.status,
        "progress": run.progress,
        "message": message,
    }
    if run.end_reason:
        data["end_reason"] = run.end_reason
    return Event.objects.create(name=name, task_id=run.task_id, run_id=run.id, data=data, created_at=now)


def emit_run_end(run: Run) -> Event:
    return emit_run_event(END_EVENTS[run.status], run, message=run.error or run.end_reason)


def emit_task_updated(task: Task, *, message: str = "") -> Event:
    now = clock.now()
    data = {"task_id": task.id, "timestamp": now.isoformat(), "message": message}
    return Event.objects.create(name=EventName.UPDATED, task_id=task.id, data=data, created_at=now)
