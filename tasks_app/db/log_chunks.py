"""The run log's hot statement written by hand: a chunk's INSERT (``services.append_log``).

Django's PostgreSQL backend binds parameters on the client: a chunk's bytes travel inside the SQL
text as a hex literal, twice their size, escaped by the driver and parsed again by the server.
Here they go as one binary parameter (psycopg's ``%b``, on a server-side-binding cursor of the same
connection, so in the same transaction). Measured when written (a loop of 512 KiB inserts of log
lines, PostgreSQL 15 with fsync off, 2 shared cores): the ORM's INSERT 26 MB/s, this one 82 MB/s,
and 215 MB/s once migration 0012 had the column compressed with lz4 instead of pglz.

SQLite binds a blob as it is: the ORM's statement is kept there (100-113 MB/s in the same loop,
against 145 MB/s for the bare sqlite3 module). What costs there is the pages: each goes to the
WAL, then again to the database at the checkpoint, and deleting a chunk (drop_old) reads its
chain of overflow pages. So a chunk of ``COMPRESS_FROM`` bytes or more is stored compressed
when that saves an eighth of it at least: log lines shrink 5 to 25 times. Measured with
bench/logs.py (200 MB of lines through a pipe, 2 shared cores under load): 46-70 MB/s raw,
85-102 MB/s zlib-compressed (level 1). zlib then took 0.9 s of the writer's 1.25 s for 200 MB
(bench/process.py), so the store ran behind supervisord: LZ4 (the lz4 package, frame format)
compresses 5 times faster (1.5 GB/s against 0.3) for half zlib's ratio. Chunks zlib compressed
earlier still read (``models.logs.unpack`` tells the two apart). Smaller chunks stay raw: they
are the ones a small flush grows again.

PostgreSQL gets the same compressed chunks. Left to compress them itself (the column's lz4), the
server spent 0.69 s of CPU per 200 MB of lines (a throwaway capture loop, PostgreSQL 15, 2
shared cores, load 4-5): its lz4 and the page faults of taking in 3 MB messages, on the cores
the worker and the command also need; compressed here first, 0.11-0.19 s, and the worker's own
CPU did not grow (a tenth of the bytes to send), so the capture went from 77-96 to 197-230 MB/s.
The column keeps its lz4 compression for the raw chunks (small ones, and bytes that do not
compress); a compressed chunk costs the server one quick failed attempt at compressing it again.
"""
from __future__ import annotations

from typing import Any

import lz4.frame
from django.db import connection

from tasks_app.models import RunLogChunk

#: Chunks this large or larger are stored compressed (when it pays).
COMPRESS_FROM = 64 * 1024


def insert_chunk(run_id: Any, *, start: int, end: int, data: bytes) -> int:
    """Store one chunk, compressed when that pays; returns its id. Inside the caller's transaction."""
    packed = lz4.frame.compress(data) if len(data) >= COMPRESS_FROM else None
    compressed = packed is not None and len(packed) <= len(data) - len(data) // 8
    stored = packed if compressed else data
    if connection.vendor != "postgresql":
        return RunLogChunk.objects.create(run_id=run_id, start=start, end=end, data=stored, compressed=compressed).pk
    import psycopg  # the PostgreSQL driver: present wherever this branch runs

    connection.ensure_connection()
    table = connection.ops.quote_name(RunLogChunk._meta.db_table)
    # Django's own errors (OperationalError for a full disk), as from any of its cursors.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(f'INSERT INTO {table} (run_id, start, "end", data, compressed) '
                       "VALUES (%s, %s, %s, %b, %s) RETURNING id", [run_id, start, end, stored, compressed])
        return cursor.fetchone()[0]
