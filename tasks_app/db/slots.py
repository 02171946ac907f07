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
#: A task's runs holding a slot, summed over its counter rows of queued and running runs.
OCCUPIED = """SUM(CASE WHEN status = 'running' THEN "count" ELSE "count" - held END)"""


@dataclass
class Slots:
    """A task's runs holding a slot (running or handed to the queue), and its held runs.

    ``held`` counts every held run; ``waiting()``, the held runs that are due, also needs those
    waiting for a later time (retries), and counts them (``run_held_later``) only the first time a
    decision asks. Most never do: a worker admitting or claiming the next held run needs only
    ``occupied``, and a trigger of a busy ``queue`` task only ``held`` under its ``queue_max``.
    Measured on PostgreSQL (bench/soak.py, pg_stat_statements): the count ran 2.3 times per run,
    in the task's lock, and cost 0.76 ms and 91 blocks with 10,000 held against 0.03 ms and 20
    blocks with 100: planned from statistics taken before the backlog came (autoanalyze waits for
    10 % of the table to change), it walked the queued runs instead of the empty
    ``run_held_later``; reproduced on the soak's history, through ``run_status_recent``, 2,282
    blocks and 8.8 ms, against 2 blocks and 0.03 ms once analysed.
    """

    task_id: str
    occupied: int
    held: int
    now: datetime
    later: int | None = None
    """Of the held runs, those not yet due at ``now``; None until ``waiting()`` counts them."""

    def waiting(self) -> int:
        if self.later is None:
            self.later = _count_later(self.task_id, now=self.now) if self.held else 0
        return self.held - self.later


def count_slots(task_ids: Collection[str], *, now: datetime) -> dict[str, Slots]:
    """``Slots`` of each task, from its counters (a few rows, whatever the backlog)."""
    if not task_ids:
        return {}
    marks = ", ".join(["%s"] * len(task_ids))
    slots = {task_id: Slots(task_id, 0, 0, now) for task_id in task_ids}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT task_id,
                       {OCCUPIED},
                       SUM(CASE WHEN status = 'queued' THEN held ELSE 0 END)
                FROM tasks_app_runcount WHERE task_id IN ({marks}) AND status IN ('queued', 'running')
                GROUP BY task_id""",
            list(task_ids),
        )
        for task_id, occupied, held in cursor.fetchall():
            slots[task_id] = Slots(task_id, int(occupied or 0), int(held or 0), now)
    return slots


def _count_later(task_id: str, *, now: datetime) -> int:
    """The task's held runs not yet due (retries waiting for their time), through ``run_held_later``."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT COUNT(*) FROM tasks_app_run{_indexed_by("run_held_later")}
                WHERE task_id = %s AND {HELD} AND not_before IS NOT NULL AND not_before > %s""",
            [task_id, connection.ops.adapt_datetimefield_value(now)],
        )
        return int(cursor.fetchone()[0])


def next_held(task_id: str, *, now: datetime, limit: int) -> list[uuid.UUID]:
    """Ids of the task's oldest held runs that are due, first in first out (``run_held_fifo``)."""
    with connection.cursor() as cursor:
        cursor.execute(f"{_next_held()} LIMIT %s", [task_id, connection.ops.adapt_datetimefield_value(now), limit])
        return [_uuid(value) for value, in cursor.fetchall()]


def slots_and_next_held(task_id: str, *, now: datetime) -> tuple[int, uuid.UUID | None]:
    """The task's runs holding a slot (``Slots.occupied``) and its oldest due held run (None: none),
    in one statement: what the end of a run needs to hand its slot to its worker
    (services/transitions.py), inside the task's lock, where each trip to the database is a wait
    for every other writer of the task."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT (SELECT {OCCUPIED} FROM tasks_app_runcount
                        WHERE task_id = %s AND status IN ('queued', 'running')),
                       ({_next_held()} LIMIT 1)""",
            [task_id, task_id, connection.ops.adapt_datetimefield_value(now)],
        )
        occupied, next_id = cursor.fetchone()
    return int(occupied or 0), None if next_id is None else _uuid(next_id)


def _next_held() -> str:
    """The task's due held runs, oldest first, through ``run_held_fifo`` (parameters: task id, now)."""
    return f"""SELECT id FROM tasks_app_run{_indexed_by("run_held_fifo")}
               WHERE task_id = %s AND {HELD} AND (not_before IS NULL OR not_before <= %s)
               ORDER BY created_at"""


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


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
