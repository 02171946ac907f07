"""Reads of the run table written by hand, each for a measured reason given in its docstring.

- ``page_ids``: a run list's page through the index that holds it in order (SQLite's INDEXED BY);
- ``latest_runs_of_each``: the latest runs of many tasks in one UNION ALL statement;
- ``run_with_task``: a run and its task, some fields of each, as every claim reads them.

tests/test_selectors.py pins their plans.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, Model

from tasks_app.models import Run, RunQuerySet, Task


def page_ids(runs: RunQuerySet, *, start: int, size: int, index: str | None) -> list[Any]:
    """Ids of ``runs[start:start + size]``, read through ``index`` on SQLite.

    SQLite without statistics answers ``status IN (a, b) ORDER BY created_at`` by gathering every
    run of both statuses and sorting them (75 ms at 100,000 runs, against 4 ms walking the list's
    own index), and ANALYZE flips the plan back and forth as the table grows; INDEXED BY settles
    it. PostgreSQL plans from the statistics autovacuum keeps, and gets the plain query.
    """
    ids = runs.values_list("id", flat=True)[start: start + size]
    if index is None or connection.vendor != "sqlite":
        return list(ids)
    with connection.cursor() as cursor:
        cursor.execute(*sql_through_index(ids, index))
        return [uuid.UUID(run_id) for (run_id,) in cursor.fetchall()]


def sql_through_index(runs: RunQuerySet, index: str) -> tuple[str, tuple[Any, ...]]:
    """The SQL of a query on the run table alone, told to read ``index`` (SQLite's INDEXED BY)."""
    sql, params = runs.query.sql_with_params()
    table = f'FROM "{Run._meta.db_table}"'
    if sql.count(table) != 1:
        raise ValueError(f"Cannot name an index in this run query: {sql}")
    return sql.replace(table, f'{table} INDEXED BY "{index}"'), params


def latest_runs_of_each(task_ids: Sequence[str], *, fields: Sequence[str], limit: int) -> list[list[Any]]:
    """``fields`` of the latest ``limit`` runs of each task, converted as the ORM would, in no
    particular order: a LIMIT subquery per task (each walks the task's history index, so 100,000
    runs cost what ten do), joined by UNION ALL. The ORM cannot slice the parts of a compound
    query on SQLite, and a window function would rank every run of every task; a query per task
    spent most of its 0.8 ms in Django compiling the same SQL again (a list page of 100 tasks:
    77 ms, now about 8)."""
    with connection.cursor() as cursor:
        cursor.execute(latest_runs_sql(len(task_ids), fields=fields, limit=limit), list(task_ids))
        rows = cursor.fetchall()
    convert = _converters([Run._meta.get_field(name) for name in fields])
    return [convert(row) for row in rows]


def latest_runs_sql(tasks: int, *, fields: Sequence[str], limit: int) -> str:
    """The statement of ``latest_runs_of_each`` for this many tasks (one ``%s`` each)."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(Run._meta.get_field(name).column) for name in fields)
    part = (f"SELECT * FROM (SELECT {columns} FROM {quote(Run._meta.db_table)} WHERE {quote('task_id')} = %s "
            f"ORDER BY {quote('created_at')} DESC LIMIT {int(limit)}) AS recent_{{}}")
    return " UNION ALL ".join(part.format(index) for index in range(tasks))


def run_with_task(run_id: Any, *, fields: Sequence[str]) -> Run:
    """The run ``run_id`` with its task, in one statement, only ``fields`` of them (``task__name``
    for the task's), as ``Run.objects.select_related("task").only(*fields).get(pk=run_id)``
    reads them: a field left out still loads when touched. Run.DoesNotExist if there is none.

    Every run's claim reads it, and Django spent 0.55 ms of the ORM query's 0.6 ms of CPU building
    the same SQL again (a third of what a no-op run costs its worker beside its claim and end)."""
    run_fields = _in_model_order(Run, [name for name in fields if not name.startswith("task__")])
    task_fields = _in_model_order(Task, [name.removeprefix("task__") for name in fields if name.startswith("task__")])
    quote = connection.ops.quote_name
    columns = ([f"r.{quote(field.column)}" for field in run_fields]
               + [f"t.{quote(field.column)}" for field in task_fields])
    sql = (f"SELECT {', '.join(columns)} FROM {quote(Run._meta.db_table)} r INNER JOIN {quote(Task._meta.db_table)} t "
           f"ON t.{quote(Task._meta.pk.column)} = r.{quote(Run._meta.get_field('task').column)} "
           f"WHERE r.{quote(Run._meta.pk.column)} = %s")
    with connection.cursor() as cursor:
        cursor.execute(sql, [Run._meta.pk.get_db_prep_value(run_id, connection)])
        row = cursor.fetchone()
    if row is None:
        raise Run.DoesNotExist(f"No run {run_id}.")
    values = _converters([*run_fields, *task_fields])(row)
    run = Run.from_db(connection.alias, [field.attname for field in run_fields], values[:len(run_fields)])
    task = Task.from_db(connection.alias, [field.attname for field in task_fields], values[len(run_fields):])
    Run._meta.get_field("task").set_cached_value(run, task)
    return run


def _in_model_order(model: type[Model], names: Sequence[str]) -> list[Field[Any, Any]]:
    """The fields ``names`` of ``model`` in the order of its columns, as ``Model.from_db`` takes
    values of only some of them."""
    wanted = {model._meta.get_field(name).attname for name in names}
    return [field for field in model._meta.concrete_fields if field.attname in wanted]


def _converters(fields: list[Any]) -> Any:
    """Turns a raw row into Python values as the ORM would (SQLite keeps UUIDs and datetimes as text)."""
    columns = [(field.get_col(field.model._meta.db_table),
                [*connection.ops.get_db_converters(field.get_col(field.model._meta.db_table)),
                 *field.get_db_converters(connection)]) for field in fields]

    def convert(row: tuple[Any, ...]) -> list[Any]:
        values = []
        for value, (column, converters) in zip(row, columns, strict=True):
            for converter in converters:
                value = converter(value, column, connection)
            values.append(value)
        return values
    return convert
