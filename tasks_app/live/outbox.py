"""The event outbox's writer: every state change of a run (and every definition change) writes one row.

Rows are written inside the transaction that makes the change, so an event exists exactly when
its change committed. Each web process's relay (``relay.py``) reads new rows and hands them to
its SSE and WebSocket clients; a client resumes from its Last-Event-ID because the id is the
row's primary key. With REDIS_URL, writers also announce new rows once committed, and the relay
reads when it hears one rather than polling (``announce.py``).

The one module of ``tasks_app.live`` the services import: what a write needs, and nothing of
the web process's side.
"""
from __future__ import annotations

from typing import Any


from tasks_app import clock
from tasks_app.live import announce
from tasks_app.db.inserts import insert_rows
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
    emit_run_events([(name, run, message)])


def emit_run_events(items: list[tuple[str, Run, str]]) -> None:
    """Events about runs, ``(name, run, message)`` each, written with one prepared statement."""
    now = clock.now()
    rows = []
    for name, run, message in items:
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
        rows.append({"name": name, "task_id": run.task_id, "run_id": run.id, "data": data, "created_at": now})
    _insert(rows)


def emit_run_end(run: Run) -> None:
    emit_run_events([run_end_event(run)])


def run_end_event(run: Run) -> tuple[str, Run, str]:
    """The event an ended run writes, as ``emit_run_events`` takes it (to write it with others)."""
    return END_EVENTS[run.status], run, run.error or run.end_reason


def emit_log_written(*, run_id: Any, task_id: str, size: int) -> None:
    """Output of a run landed in its log, which now holds ``size`` bytes (offsets): it wakes the
    run's log streams. Internal (``INTERNAL_EVENTS``): the public streams leave it out."""
    now = clock.now()
    data = {"task_id": task_id, "run_id": str(run_id), "timestamp": now.isoformat(), "size": size}
    _insert([{"name": EventName.LOG, "task_id": task_id, "run_id": run_id, "data": data, "created_at": now}])


def emit_task_updated(task: Task, *, message: str = "") -> None:
    now = clock.now()
    data = {"task_id": task.id, "timestamp": now.isoformat(), "message": message}
    _insert([{"name": EventName.UPDATED, "task_id": task.id, "run_id": None, "data": data, "created_at": now}])


def emit_service_updated(task_id: str, *, index: int | None, state: str, message: str = "",
                         run_id: Any = None, pid: int | None = None) -> None:
    """A service instance changed state (``index``), or an operator acted on the whole service
    (``index`` None, ``state`` what was asked: start, stop, restart)."""
    emit_service_updates([service_updated_row(task_id, index=index, state=state, message=message, run_id=run_id,
                                              pid=pid)])


def service_updated_row(task_id: str, *, index: int | None, state: str, message: str = "", run_id: Any = None,
                        pid: int | None = None) -> dict[str, Any]:
    """The row of a ``service:updated`` event, for ``emit_service_updates``."""
    now = clock.now()
    data = {"task_id": task_id, "index": index, "state": state, "pid": pid,
            "run_id": str(run_id) if run_id else None, "timestamp": now.isoformat(), "message": message}
    return {"name": EventName.SERVICE_UPDATED, "task_id": task_id, "run_id": run_id, "data": data, "created_at": now}


def emit_service_updates(rows: list[dict[str, Any]]) -> None:
    """Several ``service:updated`` events (``service_updated_row``), in one insert."""
    _insert(rows)


def _insert(rows: list[dict[str, Any]]) -> None:
    """Write event rows (one prepared statement, db/inserts.py), then announce them once committed."""
    if not rows:
        return
    insert_rows(Event, rows, columns=("name", "task_id", "run_id", "data", "created_at"))
    if announce.enabled():
        announce.after_commit()
