"""What a running run writes about itself while it runs: its heartbeat, and its buffered progress,
activity rows and captured output.

Apart from ``transitions`` because none of these moves a run between states, so none takes the
task's row lock: a run reports progress several times a second, and taking the lock each time
would queue its worker behind every trigger of the task. The run's own row is all they touch
(with its activity rows). Its end still goes through ``transitions.end_run``, after a last
``record_progress``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat

from tasks_app import clock
from tasks_app.live import outbox
from tasks_app.models import Activity, EventName, Run, RunStatus


def beat_run(run_id: UUID | str) -> bool:
    """Mark a run alive now, if it is still running: the reaper ends runs whose heartbeat went
    stale. Conditional, so a run ended meanwhile is left as it ended; returns whether it was running."""
    return bool(Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(heartbeat_at=clock.now()))


def record_progress(
    run: Run,
    *,
    fields: Mapping[str, Any],
    activity: Sequence[Activity] = (),
    appended_output: str = "",
    progress_changed: bool = False,
) -> None:
    """Write what a run buffered since its last write, in one transaction: its ``activity`` rows,
    the Run columns in ``fields`` (progress, counters, summary; the whole output and
    ``output_dropped`` when the cap dropped its head), ``appended_output`` added to the end of the
    stored output (by the database: the output already stored is not sent again), and a progress
    event from ``run``'s progress fields when ``progress_changed``.

    Not conditional: the last write of a run lands just before its end, and one its watchdog
    ended meanwhile still keeps what it reported. A refused write (OperationalError) rolls back
    whole, so the caller can keep everything buffered and try again.
    """
    update = dict(fields)
    if appended_output:
        update["output"] = Concat(F("output"), Value(appended_output))
    with transaction.atomic():
        if activity:
            Activity.objects.bulk_create(activity)
        if update:
            Run.objects.filter(pk=run.pk).update(**update)
        if progress_changed:
            outbox.emit_run_event(EventName.PROGRESS, run, message=run.progress_message)
