"""The one order in which Taskdeck's writes take row locks, and what happens when it is broken.

Every transaction that changes a run's status, inserts runs or deletes them takes its locks in
this order:

1. **the task's row** (``lock_task``, or ``SELECT ... FOR UPDATE`` of the task in the trigger's
   own statement); a transaction that needs several tasks (the scheduler's ticks) locks them in
   id order;
2. **its runs' rows**, by the UPDATE or DELETE that changes them;
3. **the counters** (``RunCount``), which the database's triggers update in the same statement.

Why: a run's status change moves two counters of its task (queued -1, running +1). Without the
task's lock first, a claim holding the ``queued`` counter and waiting for the task row (to set
``last_run_at``) met a trigger holding the task row and waiting for that counter: PostgreSQL
found a deadlock and failed a quarter of 400 concurrent triggers (issue 12). Holding the task's
row first serialises a task's transitions with its triggers, which the counters serialised
anyway. Writes that touch one run and nothing after it (progress, heartbeats, stop requests)
need no task lock: they cannot close a cycle.

SQLite needs none of this (its IMMEDIATE transactions let one writer in at a time); there the
lock is a no-op. ``retry_on_conflict`` runs a transaction again if PostgreSQL still ends one to
break a deadlock or a serialization conflict, so a lost race is never an error to the caller.
"""
from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import OperationalError, connection
from django.db.models import Model, QuerySet

logger = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=Model)

#: PostgreSQL's SQLSTATEs for "run the transaction again": deadlock_detected, serialization_failure.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
#: Attempts in all before the error is raised.
ATTEMPTS = 5


def lock_task(task_id: str) -> None:
    """Take the task's row lock (first, per the order above); a no-op on SQLite."""
    if not connection.features.has_select_for_update:
        return
    from tasks_app.models import Task

    table = connection.ops.quote_name(Task._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE", [task_id])


def lock_task_reading(task_id: str, fields: Sequence[str]) -> tuple[Any, ...] | None:
    """Take the task's row lock and read ``fields`` of it in the same statement (None: no such
    task). Hand-written because it runs inside the write lock of every trigger, where building
    the equivalent ORM query cost several times the query itself."""
    from tasks_app.models import Task

    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    table = connection.ops.quote_name(Task._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(name) for name in fields)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {table} WHERE id = %s{lock}", [task_id])
        return cursor.fetchone()


def locked_in_id_order(rows: QuerySet[M]) -> QuerySet[M]:
    """``rows`` locked in id order when read (rule 1 above, for several tasks); as is on SQLite."""
    if not connection.features.has_select_for_update:
        return rows
    return rows.select_for_update().order_by("id")


def is_conflict(error: BaseException) -> bool:
    """Whether PostgreSQL ended the transaction only to break a deadlock or a serialization conflict."""
    cause = error.__cause__
    return getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES


def retry_on_conflict(function: Callable[..., T]) -> Callable[..., T]:
    """Run ``function`` (which opens its own transaction) again when it loses such a race.

    Only an outermost transaction can be run again: inside another one, the error goes up to it.
    """

    @functools.wraps(function)
    def retried(*args: Any, **kwargs: Any) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return function(*args, **kwargs)
            except OperationalError as error:
                if attempt == ATTEMPTS or connection.in_atomic_block or not is_conflict(error):
                    raise
                logger.info("%s lost a race in the database (%s); running it again.", function.__name__, error)
                time.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")

    return retried
