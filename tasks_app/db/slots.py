"""A task's slots and its held runs, read without walking its backlog.

Triggering decides the overlap policy from how many of a task's runs hold a slot (running, or
queued and handed to the queue) and how many are held (queued, not handed over) and due. With a
``queue`` task 10,000 runs deep, counting those rows on every trigger made each trigger cost more
the deeper the queue (62 triggers a second at 10,000; issue 12). Here they come from the counters
the database keeps (``RunCount.count`` and ``held``, migration 0009) and from two partial indexes
that hold only held runs (``run_held_fifo``, ``run_held_later``): the cost no longer grows with
the backlog. tests/test_slots.py pins the plans on SQLite and PostgreSQL.

The statements are written by hand with the partial indexes' conditions as literals: SQLite uses
a partial index only when the query's WHERE clause contains the index's terms as written, and a
bound parameter (``status = ?``) is not a literal. Call these inside the transaction that holds
the task's row lock (db/locks.py), so the counts cannot move under the decision.
"""
from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

#: What marks a held run; the same terms as the partial indexes' condition (models.Run.Meta).
HELD = "status = 'queued' AND enqueued_at IS NULL"


@dataclass
class Slots:
    """A task's runs holding a slot (running or handed to the queue), and its held runs due."""

    occupied: int
    waiting: int


def count_slots(task_ids: Collection[str], *, now: datetime) -> dict[str, Slots]:
    """``Slots`` of each task, from its counters and the held runs not yet due (retries waiting
    for their time, found through ``run_held_later``)."""
    if not task_ids:
        return {}
    marks = ", ".join(["%s"] * len(task_ids))
    slots = {task_id: Slots(0, 0) for task_id in task_ids}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT task_id,
                       SUM(CASE WHEN status = 'running' THEN "count" ELSE "count" - held END),
                       SUM(CASE WHEN status = 'queued' THEN held ELSE 0 END)
                FROM tasks_app_runcount WHERE task_id IN ({marks}) AND status IN ('queued', 'running')
                GROUP BY task_id""",
            list(task_ids),
        )
        for task_id, occupied, held in cursor.fetchall():
            slots[task_id] = Slots(int(occupied or 0), int(held or 0))
        cursor.execute(
            f"""SELECT task_id, COUNT(*) FROM tasks_app_run{_indexed_by("run_held_later")}
                WHERE task_id IN ({marks}) AND {HELD} AND not_before IS NOT NULL AND not_before > %s
                GROUP BY task_id""",
            [*task_ids, connection.ops.adapt_datetimefield_value(now)],
        )
        for task_id, later in cursor.fetchall():
            slots[task_id].waiting -= int(later)
    return slots


def next_held(task_id: str, *, now: datetime, limit: int) -> list[uuid.UUID]:
    """Ids of the task's oldest held runs that are due, first in first out (``run_held_fifo``)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT id FROM tasks_app_run{_indexed_by("run_held_fifo")}
                WHERE task_id = %s AND {HELD} AND (not_before IS NULL OR not_before <= %s)
                ORDER BY created_at LIMIT %s""",
            [task_id, connection.ops.adapt_datetimefield_value(now), limit],
        )
        return [value if isinstance(value, uuid.UUID) else uuid.UUID(value) for value, in cursor.fetchall()]


def _indexed_by(index: str) -> str:
    """SQLite may pick a covering index of every queued run over the held runs' own (their costs
    tie on its statistics), and then walk past every run handed to the queue: name the index.
    PostgreSQL picks the partial index by itself (tests/test_slots.py checks both)."""
    return f" INDEXED BY {index}" if connection.vendor == "sqlite" else ""


def tasks_with_held_runs() -> list[str]:
    """Tasks that have held runs (due or not), from their counters."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT task_id FROM tasks_app_runcount WHERE status = 'queued' AND held > 0")
        return [task_id for task_id, in cursor.fetchall()]


def has_held_runs(task_id: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM tasks_app_runcount WHERE task_id = %s AND status = 'queued' AND held > 0",
                       [task_id])
        return cursor.fetchone() is not None
