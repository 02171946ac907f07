"""What a running run writes about itself while it runs: its heartbeat, its buffered progress and
activity rows, and its captured output (its log: ``append_log``, models/logs.py).

Apart from ``transitions`` because none of these moves a run between states, so none takes the
task's row lock: a run reports progress several times a second, and taking the lock each time
would queue its worker behind every trigger of the task. The run's own row is all they touch
(with its activity rows). Its end still goes through ``transitions.end_run``, after a last
``record_progress``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db import transaction

from tasks_app import clock
from tasks_app.db.log_chunks import COMPRESS_FROM, insert_chunk
from tasks_app.live import outbox
from tasks_app.models import Activity, EventName, Run, RunLogChunk, RunStatus, StopRequest


def beat_run(run_id: UUID | str) -> bool:
    """Mark a run alive now, if it is still running: the reaper ends runs whose heartbeat went
    stale. Conditional, so a run ended meanwhile is left as it ended; returns whether it was running."""
    return bool(Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(heartbeat_at=clock.now()))


def record_pid(run_id: UUID | str, pid: int) -> None:
    """The pid of the process a command run started (its group's id too), while it is running."""
    Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(pid=pid)


def record_progress(
    run: Run,
    *,
    fields: Mapping[str, Any],
    activity: Sequence[Activity] = (),
    progress_changed: bool = False,
) -> None:
    """Write what a run buffered since its last write, in one transaction: its ``activity`` rows,
    the Run columns in ``fields`` (progress, counters, summary), and a progress event from
    ``run``'s progress fields when ``progress_changed``.

    Not conditional: the last write of a run lands just before its end, and one its watchdog
    ended meanwhile still keeps what it reported. A refused write (OperationalError) rolls back
    whole, so the caller can keep everything buffered and try again.
    """
    with transaction.atomic():
        if activity:
            Activity.objects.bulk_create(activity)
        if fields:
            Run.objects.filter(pk=run.pk).update(**fields)
        if progress_changed:
            outbox.emit_run_event(EventName.PROGRESS, run, message=run.progress_message)


#: A flush smaller than this is added to the run's last chunk while that stays under it (the row
#: is written again, with at most this many bytes), rather than stored as a row of its own: a
#: command printing a line a second for a month fills rows of 64 KiB, not millions of one line.
#: Such chunks are never stored compressed (db/log_chunks.py), so they can be rewritten as they are.
COALESCE_BYTES = COMPRESS_FROM


@dataclass(frozen=True)
class LogTail:
    """The last chunk a writer stored, while it is small: all its bytes, so the next small flush
    can rewrite it longer without reading it back."""

    chunk_id: int
    data: bytes
    end: int


def append_log(
    run_id: UUID | str,
    *,
    task_id: str,
    start: int,
    data: bytes,
    kept_from: int | None = None,
    tail: LogTail | None = None,
    stop_for_overflow: bool = False,
    announce: bool = False,
) -> LogTail | None:
    """Store one flush of a run's output (execution/output.py), in one transaction: ``data``, the
    bytes from offset ``start``, added to the run's log (to ``tail`` when both are small, else as
    a chunk of its own); the log's head before ``kept_from`` dropped (``drop_old``: chunks wholly
    before it deleted, the one it falls in shown from it); when ``stop_for_overflow``, the run
    asked to stop because its log overflowed (``kill_task``; it ends ``log_overflow``); when
    ``announce``, an event that wakes the run's log streams. Returns the tail to give the next call.

    Written by the run's one writer, so nothing else moves its chunks; not conditional on the run
    still running: a run's last output lands just before its end. A refused write
    (OperationalError) rolls back whole and the writer keeps its bytes for the next try.
    """
    end = start + len(data)
    with transaction.atomic():
        chunks = RunLogChunk.objects.filter(run_id=run_id)
        if kept_from is not None:
            chunks.filter(end__lte=kept_from).delete()
            chunks.filter(start__lt=kept_from, end__gt=kept_from).update(start=kept_from)
            if tail is not None and tail.end <= kept_from:
                tail = None
        if data and tail is not None and tail.end == start and len(tail.data) + len(data) <= COALESCE_BYTES:
            joined = tail.data + data
            chunks.filter(pk=tail.chunk_id).update(data=joined, end=end)
            tail = LogTail(tail.chunk_id, joined, end)
        elif data:
            chunk_id = insert_chunk(run_id, start=max(start, kept_from or 0), end=end, data=data)
            tail = LogTail(chunk_id, data, end) if len(data) < COALESCE_BYTES else None
        if stop_for_overflow:
            Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, stop_requested="").update(
                stop_requested=StopRequest.OVERFLOW, stop_requested_at=clock.now())
        if announce:
            outbox.emit_log_written(run_id=run_id, task_id=task_id, size=end if data else start)
    return tail
