"""Moving scheduled tasks to their next tick, a whole batch in one prepared statement.

``bulk_update`` builds a CASE per row and cost more than the rest of a tick batch (the scheduler
firing 1,000 one-minute tasks, bench/scheduler.py); ``executemany`` of one small UPDATE does not.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import connection

from tasks_app.models import Task


def advance_ticks(moves: Iterable[tuple[str, datetime | None, datetime | None]]) -> None:
    """Set ``next_run_at`` and ``last_tick_at`` of each ``(task_id, next_run_at, last_tick_at)``."""
    field = Task._meta.get_field("next_run_at")
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {quote(Task._meta.db_table)} SET {quote('next_run_at')} = %s, {quote('last_tick_at')} = %s "
            f"WHERE {quote('id')} = %s",
            [(field.get_db_prep_save(next_run_at, connection), field.get_db_prep_save(last_tick_at, connection), task_id)
             for task_id, next_run_at, last_tick_at in moves],
        )
