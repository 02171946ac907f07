"""The one entry for running a run in a worker: ``execute_run``, which django-q2 calls
(``queue.handoff.EXECUTE``).

It claims the run (a duplicate delivery stops there), runs it with the executor for its task's
kind (``EXECUTORS``) beside a ``RunContext`` and a ``Watchdog``, then records the end the executor
reported (``log_overflow`` instead when its log passed a ``kill_task`` cap), however long the
database takes to take it. A worker that ends a run of a ``queue`` task claims the task's next
held run in the same transaction and runs it itself (``HAND_OVER_FOR``).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple
from uuid import UUID

from django.db import DatabaseError, OperationalError, connections

from tasks_app import clock, services
from tasks_app.conf import taskdeck_settings
from tasks_app.execution.context import RunContext
from tasks_app.execution.outcome import STOPPED, Outcome, failed
from tasks_app.execution.process import execute as execute_process
from tasks_app.execution.python import execute as execute_python
from tasks_app.execution.watchdog import Watchdog
from tasks_app.models import REASON_FOR_STOP, EndReason, LogOnFull, OverlapPolicy, Run, StopRequest, TaskKind

logger = logging.getLogger(__name__)

#: Runs a claimed run's code with its ctx and reports how it ended; it never ends the run itself.
Executor = Callable[[Run, RunContext], Outcome]

#: The executor for each task kind a worker can run. A kind missing here ends its runs failed.
EXECUTORS: Mapping[str, Executor] = MappingProxyType({TaskKind.PYTHON: execute_python,
                                                      TaskKind.COMMAND: execute_process})

#: A worker that ends a run of a ``queue`` task runs the task's next held run itself (no trip
#: through the queue), one after another, for up to this long (seconds) per queue message; then
#: the next one goes through the queue again. Short, so runs of other tasks waiting in the queue
#: wait at most about this much longer; and far inside django-q2's timeout of a message (the
#: task's timeout plus CANCEL_GRACE plus 30 s, a backstop behind the watchdog).
HAND_OVER_FOR = 1.0


def execute_run(run_id: str | UUID, task_id: str | None = None) -> str:
    """django-q2's entry point. Returns a short note for django-q2's own logs."""
    run = services.claim_run(run_id, task_id=task_id)
    if run is None:
        return "not claimed (already taken, ended or removed)"
    began = clock.monotonic()
    while True:
        keep_slot = run.task.on_overlap == OverlapPolicy.QUEUE and clock.monotonic() - began < HAND_OVER_FOR
        recorded = execute_claimed(run, keep_slot=keep_slot, **log_settings(run))
        if recorded.next_run_id is None:
            return recorded.reason
        run = services.read_for_execution(recorded.next_run_id)


def log_settings(run: Run) -> dict[str, Any]:
    """The cap of a run's log: a command task's from its process settings; python runs keep
    ``LOG_MAX_SIZE`` bytes, dropping the oldest, until python tasks have log settings of their own."""
    if run.task.kind == TaskKind.COMMAND:
        return {"log_max_size": int(run.task.process["log_max_size"]), "log_on_full": run.task.process["log_on_full"]}
    return {"log_max_size": int(taskdeck_settings.LOG_MAX_SIZE), "log_on_full": LogOnFull.DROP_OLD}


def stops_within(run: Run) -> float | None:
    """Seconds within which the run's executor stops its code itself once asked (a command's
    group: its ``graceful_stop``); None for python code, which may never look."""
    if run.task.kind == TaskKind.COMMAND:
        return float(run.task.process["graceful_stop"])
    return None


class Recorded(NamedTuple):
    """A run's recorded end: its reason, and the task's next held run that its end claimed for
    this worker (``keep_slot``), which the worker runs next."""

    reason: str
    next_run_id: UUID | None = None


def execute_claimed(run: Run, *, keep_slot: bool = False, log_max_size: int, log_on_full: str) -> Recorded:
    """Run one claimed run to its recorded end, its log capped at ``log_max_size`` bytes as
    ``log_on_full`` says. ``keep_slot``: its end claims the task's next held run for this worker
    (``services.finish_and_claim_next``); dropped if django-q2 or the interpreter stops the worker
    meanwhile."""
    outcome = Outcome(EndReason.FAILED)
    ctx = watchdog = None
    try:
        stop = threading.Event()
        ctx = RunContext(run, stop_event=stop, log_max_size=log_max_size, log_on_full=log_on_full)
        watchdog = Watchdog(run, ctx=ctx, stop_event=stop, stops_within=stops_within(run))
        watchdog.start()
        outcome = _run_code(run, ctx)
        if ctx.log_overflowed:
            outcome = overflowed(ctx, outcome)
    except BaseException as error:  # django-q2's own timeout (SystemExit) or interpreter exit
        timed_out = "timeout" in type(error).__name__.lower()
        outcome = failed(error, reason=EndReason.TIMEOUT if timed_out else EndReason.FAILED)
        keep_slot = False
        raise
    finally:
        if watchdog is not None:
            watchdog.finish()
        ended = ctx.current_run if ctx is not None else run
        recorded = _record_end(ended, ctx=ctx, outcome=outcome, keep_slot=keep_slot)
    return recorded


def _run_code(run: Run, ctx: RunContext) -> Outcome:
    """The run's code, by the executor for its task's kind; a kind no executor runs ends failed."""
    executor = EXECUTORS.get(run.task.kind)
    if executor is None:
        error = (f"Tasks of kind {run.task.kind!r} cannot run here: this worker runs only "
                 f"{', '.join(map(str, EXECUTORS))} tasks.")
        logger.error("Run %s: %s", run.pk, error)
        return Outcome(EndReason.FAILED, {"error": error})
    return executor(run, ctx)


def overflowed(ctx: RunContext, outcome: Outcome) -> Outcome:
    """However its code ended, a run whose log passed its cap with ``kill_task`` ends log_overflow
    (its process's pid and what it ended with are kept)."""
    ended_with = {name: outcome.fields[name] for name in ("pid", "exit_code", "exit_signal") if name in outcome.fields}
    return Outcome(EndReason.LOG_OVERFLOW, {**ended_with, "error": (
        f"Its output passed log_max_size ({ctx.log_writer.max_size:,} bytes) with log_on_full = kill_task; "
        "the run was stopped.")})


def _stop_reason(run: Run) -> str:
    """Why a run that stopped on request ends: cancelled, terminated or shutdown."""
    stop_requested = Run.objects.filter(pk=run.pk).values_list("stop_requested", flat=True).first()
    return REASON_FOR_STOP.get(stop_requested or StopRequest.CANCEL, EndReason.CANCELLED)


def _record_end(run: Run, *, ctx: RunContext | None, outcome: Outcome, keep_slot: bool) -> Recorded:
    """Write the run's last output, its last progress and its end, however long the database takes to answer;
    returns the end reason (``STOPPED`` becomes the reason the stop was asked for), and the run
    claimed with the end (``keep_slot``).

    A database that refuses writes for a while (a full disk, a lock held past the busy timeout,
    a dropped connection) is waited for: giving up would leave the run to the reaper, which would
    end it ``crashed`` though it finished. An outcome the database cannot take (a result it
    refuses) is replaced by a message saying so, so the run still ends with its reason.
    """
    reason, fields = outcome.reason, dict(outcome.fields)
    refused = False
    for delay in _retry_delays():
        try:
            if reason == STOPPED and ctx is not None and ctx.timed_out_after is not None:
                reason = EndReason.TIMEOUT
                fields["error"] = f"Timed out after {ctx.timed_out_after:g} s."
            elif reason == STOPPED:
                reason = _stop_reason(run)
            if ctx is not None:
                ctx.close_log()
                ctx.flush(force=True)
            if keep_slot:  # an attempt that raised after committing: its claim is found again (end_run)
                return Recorded(reason, services.finish_and_claim_next(run, reason=reason, claim_for=os.getpid(), **fields))
            services.finish_run(run, reason=reason, **fields)
            return Recorded(reason)
        except OperationalError as error:
            _wait_for_database(run, error, delay)
        except (DatabaseError, ValueError) as error:
            if refused:
                raise
            refused = True
            logger.exception("The outcome of run %s cannot be stored; recording its end without it.", run.pk)
            if ctx is not None:
                ctx.log_writer.abandon()
            ctx = None
            fields = {"error": f"The run ended {reason}, but its outcome could not be stored ({type(error).__name__}).",
                      "result": None, "traceback": ""}


def _retry_delays() -> Iterator[float]:
    """0.5 s, doubling to 5 s, for ever."""
    delay = 0.5
    while True:
        yield delay
        delay = min(delay * 2, 5.0)


def _wait_for_database(run: Run, error: Exception, delay: float) -> None:
    logger.warning("Could not record the end of run %s (%s); trying again in %g s.", run.pk, error, delay)
    connections.close_all()  # a broken connection is replaced on the next try
    time.sleep(delay)

