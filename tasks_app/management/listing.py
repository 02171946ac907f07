"""The table ``manage.py tasks list`` prints: each task's kind, trigger, state and last run, and
what a watcher watches (a WATCHES column, when there is a watcher)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tasks_app import selectors
from tasks_app.definitions.watcher import describe as describe_watch
from tasks_app.models import Task


def task_table(tasks: list[Task]) -> Iterator[str]:
    """The table's lines, columns aligned. A service's status is its roll-up state, a watcher's its
    state (watching, error...), the others' their runs'."""
    statuses = selectors.task_statuses(tasks)
    statuses.update({task_id: state for task_id, (state, _) in selectors.service_states(tasks).items()})
    watchers = selectors.watcher_states(tasks)
    statuses.update({task_id: watcher["state"] for task_id, watcher in watchers.items()})
    rows = [("ID", "KIND", "TRIGGER", "ENABLED", "STATUS", "LAST RUN", *(("WATCHES",) if watchers else ()))]
    for task in tasks:
        last = task.last_run_at.strftime("%Y-%m-%d %H:%M:%S") if task.last_run_at else "-"
        watches = (watcher_text(watchers[task.id]) if task.id in watchers else "-",) if watchers else ()
        rows.append((task.id, task.kind, task.trigger, "yes" if task.enabled else "no", statuses[task.id], last,
                     *watches))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        yield "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()


def watcher_text(watcher: dict[str, Any]) -> str:
    """A watcher's paths, patterns and target, then what is pending and what is wrong."""
    pending = f"; {watcher['pending_changes']} change(s) pending" if watcher["pending_changes"] else ""
    error = f"; {watcher['error']}" if watcher["error"] else ""
    return describe_watch(watcher) + pending + error
