"""How a run ends, whoever ends it (runner, watchdog, reaper, shutdown): ``finish_run`` and what
an end sets off (``after_run_ended``: a retry through the trigger door when attempts remain)."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from uuid import UUID

from tasks_app import clock
from tasks_app.conf import taskdeck_settings
from tasks_app.exceptions import TaskdeckError
from tasks_app.models import RETRYABLE_REASONS, Run, RunStatus, RunTrigger, Task
from tasks_app.scheduling import backoff
from tasks_app.services.transitions import end_run
from tasks_app.services.triggering import trigger

logger = logging.getLogger(__name__)


def finish_run(
    run: Run | UUID | str,
    *,
    reason: str,
    from_statuses: Iterable[str] = (RunStatus.RUNNING,),
    **fields: Any,
) -> Run | None:
    """End a run with ``reason`` if it is still in one of ``from_statuses``; write its end event.

    Conditional, so the runner, its watchdog, the reaper and a shutdown can race to end a run
    and exactly one wins. Returns the ended run, or None if someone else ended it first. Pass the
    Run itself when you have it: the transaction then only writes.
    """
    if not isinstance(run, Run):
        run = Run.objects.filter(pk=run).first()
        if run is None:
            return None
    if not end_run(run, reason=reason, from_statuses=list(from_statuses), fields=fields).won:
        return None
    after_run_ended(run)
    return run


def finish_and_claim_next(run: Run, *, reason: str, claim_for: int, **fields: Any) -> UUID | None:
    """``finish_run`` of a running run by the worker that ran it, which keeps its slot: the end
    and the claim of the task's next held run for that worker (its pid ``claim_for``; ``fields``
    may hold the run's own ``pid``, a command's) are one transaction under
    one lock of the task (``end_run`` with ``claim_for``), while the task's policy still is
    ``queue``. Returns the claimed run's id (``services.read_for_execution`` reads it), or None:
    no slot free, no held run due, or the end lost (someone else ended the run first; then
    nothing is claimed here). A retry, if the reason calls for one, is scheduled after the end.

    The worker calls it again when it raised (``execution.entry`` waits out a refusing database):
    if the end had committed, with its claim, before the error (in the retry, or in the commit's
    answer), the end loses to itself and returns the run it claimed then, which is still this
    worker's to run.
    """
    ended = end_run(run, reason=reason, from_statuses=[RunStatus.RUNNING], fields=fields, claim_for=claim_for)
    if ended.won:
        after_run_ended(run)
    return ended.next_run_id


def after_run_ended(run: Run) -> None:
    """What a run's end sets off, whoever ended it (runner, watchdog, reaper): a retry when the
    reason is retryable and attempts remain. (The freed slot went to the next held run in the
    end's own transaction.)"""
    if run.end_reason in RETRYABLE_REASONS and run.trigger != RunTrigger.SUPERVISOR:
        schedule_retry(run)  # a service instance is restarted by its supervisor instead


def schedule_retry(run: Run) -> Run | None:
    """The next attempt of a failed, timed-out or crashed run, if its task allows one more.

    It goes through ``trigger`` like any run, with trigger ``retry``, the failed run's
    parameters and a ``not_before`` time from the task's backoff: until then it is a queued
    run waiting for its time, which operators see and can cancel (that ends the chain).
    """
    task = Task.objects.get(pk=run.task_id)
    if run.attempt > task.retry_attempts:
        return None
    delay = backoff.retry_delay(backoff=task.retry_backoff, delay=task.retry_delay, attempt=run.attempt,
                                  cap=taskdeck_settings.RETRY_MAX_DELAY)
    try:
        return trigger(task, source=RunTrigger.RETRY, requested_by=run.triggered_by, parameters=run.parameters,
                       dry_run=run.dry_run, not_before=clock.now() + timedelta(seconds=delay), retry_of=run)
    except TaskdeckError as error:  # disabled, removed or changed since: the chain ends here
        logger.info("No retry of run %s: %s", run.pk, error.detail)
        return None
