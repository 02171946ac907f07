"""UPDATE of one row, some of its fields, only while others hold given values: one prepared
statement, each value prepared by its field, as ``QuerySet.update`` prepares it.

Every run's claim and end change its row (the claim its task's too) inside the write lock, where
Django spent 0.3-0.5 ms of CPU building each such UPDATE against 0.06 ms for the statement itself
(three of them: about a sixth of what a run costs its worker; bench/process.py).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import connection
from django.db.models import Model


def update_row(model: type[Model], pk: Any, values: Mapping[str, Any], *,
               where: Mapping[str, Any] | None = None) -> bool:
    """Set ``values`` (field name: value; None is NULL) on ``model``'s row ``pk`` if each field of
    ``where`` holds its value (one of them, for a list or tuple; None: NULL). Whether it did."""
    meta = model._meta
    quote = connection.ops.quote_name
    assignments, params = [], []
    for name, value in values.items():
        field = meta.get_field(name)
        if hasattr(value, "resolve_expression") or hasattr(field, "get_placeholder"):
            raise ValueError(f"update_row sets plain values of plain fields, not {name}={value!r}")
        assignments.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    conditions = [f"{quote(meta.pk.column)} = %s"]
    params.append(meta.pk.get_db_prep_value(pk, connection))
    for name, expected in (where or {}).items():
        field = meta.get_field(name)
        if expected is None:
            conditions.append(f"{quote(field.column)} IS NULL")
            continue
        options = expected if isinstance(expected, list | tuple) else [expected]
        conditions.append(f"{quote(field.column)} IN ({', '.join(['%s'] * len(options))})")
        params.extend(field.get_db_prep_value(option, connection) for option in options)
    sql = f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount > 0
