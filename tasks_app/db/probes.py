"""Whether the database answers at all: health's first question, asked before its write probe.

A bare ``SELECT 1`` rather than an ORM read, so the answer depends on the connection alone and not
on any table (a database migrated by another version still answers).
"""
from __future__ import annotations

from django.db import connection


def answers() -> None:
    """Raise ``DatabaseError`` unless the database answers (this opens the connection if needed)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
