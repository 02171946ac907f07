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
    keep_slot: bool = False,
    **fields: Any,
) -> Run | None:
    """End a run with ``reason`` if it is still in one of ``from_statuses``; write its end event.

    Conditional, so the runner, its watchdog, the reaper and a shutdown can race to end a run
    and exactly one wins. Returns the ended run, or None if someone else ended it first. Pass the
    Run itself when you have it: the transaction then only writes. ``keep_slot``: the worker that
    ran it takes the freed slot itself (``services.claim_next_held``) instead of the next held run
    going through the queue.
    """
    if not isinstance(run, Run):
        run = Run.objects.filter(pk=run).first()
        if run is None:
            return None
    if not end_run(run, reason=reason, from_statuses=list(from_statuses), fields=fields, keep_slot=keep_slot):
        return None
    after_run_ended(run)
    return run


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
