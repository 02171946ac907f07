"""What commands do with a database that refuses them: one line, a non-zero exit, no traceback."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError
from django.db import DatabaseError, connection


@contextmanager
def database_errors_in_one_line() -> Iterator[None]:
    """A read-only file, a full disk or a server away becomes ``CommandError`` naming the cause."""
    try:
        yield
    except DatabaseError as error:
        where = connection.settings_dict.get("NAME") or "the database"
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CommandError(f"The database ({where}) refused: {first_line}. "
                           "Check DATABASE_URL, its disk space and its file permissions.") from None
