"""RunLogChunk: a run's captured output (its log), stored as bytes in chunks, so any web process on
any host can read and stream it while the run goes; and the marker lines that say what was dropped.

The offset space. Every byte a run's log keeps has an offset that never changes: the bytes
written before it, dropped ones included. A chunk holds the bytes of ``[end - len(data), end)``
and shows those of ``[start, end)``: ``start`` moves forward when ``drop_old`` cuts the head of
the log inside the chunk (``data`` is not rewritten), and chunks wholly before the cut are
deleted. So the log's size (the next offset to ask for, ``X-Log-Size``) is the ``end`` of its last
chunk, and the bytes dropped from its head the ``start`` of its first. Chunks are contiguous:
each starts where the one before it ends (or later, where the head was cut).

A chunk's bytes may be stored compressed (``compressed``; ``unpack`` gives them back): the writer
compresses large chunks (LZ4; zlib on SQLite before it), which roughly halves what storing a
command's output costs (db/log_chunks.py). On PostgreSQL the column compresses the raw ones
(lz4, migration 0012); chunks it stored raw before the writer compressed there still read.

What was dropped is said by a marker line (``dropped_marker``): for ``drop_old`` the readers write
it in front of the kept bytes (the dropped head has offsets but no bytes); for ``drop_new`` and
``kill_task`` the writer stores it where the cut fell, so it has offsets like any output.
"""
from __future__ import annotations

import zlib

import lz4.frame
from django.db import models

from tasks_app.models.runs import Run


class RunLogChunk(models.Model):
    id = models.BigAutoField(primary_key=True)
    # No index of its own: run_log_chunk_end starts with it.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="log_chunks", db_index=False)
    start = models.PositiveBigIntegerField(help_text="Offset of the first byte shown")
    end = models.PositiveBigIntegerField(help_text="Offset after the last byte")
    data = models.BinaryField(help_text="The bytes of [end - len(data), end), LZ4-compressed when compressed "
                                        "(zlib in chunks stored before LZ4)")
    compressed = models.BooleanField(default=False)

    class Meta:
        # Every read and write names a run and an offset: a range from an offset (end > offset),
        # the size (the greatest end), the chunks a cut drops (end <= cut). Unique: two writers
        # of one run would collide here rather than interleave.
        constraints = [models.UniqueConstraint(fields=["run", "end"], name="run_log_chunk_end")]

    def __str__(self) -> str:
        return f"{self.run_id} [{self.start}, {self.end})"


#: How an LZ4 frame starts (zlib's streams start with 0x78).
LZ4_MAGIC = b"\x04\x22\x4d\x18"


def unpack(data: bytes | memoryview, *, compressed: bool) -> bytes:
    """A chunk's bytes as they were written: stored as is, LZ4-compressed (db/log_chunks.py), or
    zlib-compressed (the chunks SQLite stored before LZ4)."""
    if not compressed:
        return bytes(data)
    if bytes(data[:4]) == LZ4_MAGIC:
        return lz4.frame.decompress(data)
    return zlib.decompress(data)


def dropped_marker(count: int) -> bytes:
    """The line that stands where ``count`` bytes of output were dropped."""
    return f"[taskdeck: {count:,} bytes dropped]\n".encode()


def full_marker(max_size: int, *, stopping: bool) -> bytes:
    """The line a ``drop_new`` or ``kill_task`` log stores where it reached ``log_max_size``."""
    then = "stopping the run (log_on_full = kill_task)" if stopping else "later output is dropped (log_on_full = drop_new)"
    return f"[taskdeck: log_max_size of {max_size:,} bytes reached; {then}]\n".encode()
