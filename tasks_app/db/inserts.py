"""INSERT of many rows of one model in one prepared statement, each value prepared by its field.

Every run writes three events inside write transactions, where ``Model.save`` cost twice the
statement itself, and a scheduler pass writes a thousand at once; ``bulk_create`` builds one
statement per batch with every value inlined as a parameter, which costs more to compile than
``executemany`` of one small INSERT.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connection
from django.db.models import Model


def insert_rows(model: type[Model], rows: Sequence[Mapping[str, Any]], *, columns: Sequence[str]) -> None:
    """Insert ``rows`` (mappings of field name to value) into ``model``'s table."""
    if not rows:
        return
    fields = [model._meta.get_field(name) for name in columns]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    params = [[field.get_db_prep_save(row[field.name], connection) for field in fields] for row in rows]
    with connection.cursor() as cursor:
        if len(params) == 1:
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)
