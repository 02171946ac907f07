"""The event outbox: every state change of a run (and every definition change) writes one row.

Rows are written inside the transaction that makes the change, so an event exists exactly when
its change committed. Web processes read new rows to feed SSE and WebSocket clients; an SSE
client resumes from its Last-Event-ID because the id is the row's primary key.
"""
from __future__ import annotations

from typing import Any

from django.db import connection

from tasks_app import clock
from tasks_app.models import Event, EventName, Run, RunStatus, Task

#: The event a run's end writes, by its final status.
END_EVENTS: dict[str, str] = {
    RunStatus.COMPLETED: EventName.COMPLETED,
    RunStatus.FAILED: EventName.ERROR,
    RunStatus.CANCELLED: EventName.CANCELLED,
    RunStatus.SKIPPED: EventName.SKIPPED,
}


def emit_run_event(name: str, run: Run, *, message: str = "") -> None:
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
    _insert(name=name, task_id=run.task_id, run_id=run.id, data=data, created_at=now)


def emit_run_end(run: Run) -> None:
    emit_run_event(END_EVENTS[run.status], run, message=run.error or run.end_reason)


def emit_task_updated(task: Task, *, message: str = "") -> None:
    now = clock.now()
    data = {"task_id": task.id, "timestamp": now.isoformat(), "message": message}
    _insert(name=EventName.UPDATED, task_id=task.id, run_id=None, data=data, created_at=now)


_COLUMNS = ("name", "task_id", "run_id", "data", "created_at")


def _insert(**values: Any) -> None:
    """INSERT one event row, each value prepared by its model field.

    Every run writes three events inside write transactions, where ``Model.save`` cost twice
    the statement itself.
    """
    fields = [Event._meta.get_field(name) for name in _COLUMNS]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(Event._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    params = [field.get_db_prep_save(values[field.name], connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
