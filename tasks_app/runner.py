"""Runs one claimed Run inside a django-q2 worker: the context task code sees, and its watchdog.

``execute_run`` is what django-q2 calls. It claims the run (a duplicate delivery stops there),
starts a watchdog thread, calls the task with a ``RunContext``, and ends the run with the right
status. The watchdog heartbeats, picks up stop requests (cancel, terminate, shutdown) and the
timeout, and when task code does not stop in time it ends the run itself and kills its own
worker process: django-q2's guard then starts a fresh worker.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from uuid import UUID

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, OperationalError, connections

from tasks_app import clock, services
from tasks_app.conf import taskdeck_settings
from tasks_app.models import REASON_FOR_STOP, Activity, EndReason, OverlapPolicy, Run, RunStatus, StopRequest
from tasks_app.registry import resolve_callable
from tasks_app.text import storable, storable_data

logger = logging.getLogger(__name__)

#: Activity actions that leave the item as it was; every other successful action "affects" it.
NOOP_ACTIONS = frozenset({"keep", "skip", "none", "noop", "unchanged"})
ERROR_MAX_LENGTH = 2000


class RunCancelled(Exception):
    """Raised by ``ctx.check_cancelled()``; ends the run cancelled (or terminated, shutdown)."""


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
        reason = _execute(run, keep_slot=keep_slot)
        following = services.claim_next_held(run.task_id, pid=os.getpid()) if keep_slot else None
        if following is None:
            return reason
        run = following


def _execute(run: Run, *, keep_slot: bool) -> str:
    """Run one claimed run to its recorded end; returns its end reason. ``keep_slot``: see
    ``services.finish_run`` (dropped if django-q2 or the interpreter stops the worker meanwhile)."""
    outcome: dict[str, Any] = {}
    ctx = watchdog = None
    try:
        stop = threading.Event()
        ctx = RunContext(run, stop_event=stop)
        watchdog = Watchdog(run, ctx=ctx, stop_event=stop)
        watchdog.start()
        outcome = _call_task(run, ctx)
    except BaseException as error:  # django-q2's own timeout (SystemExit) or interpreter exit
        outcome = {"reason": EndReason.TIMEOUT if "timeout" in type(error).__name__.lower() else EndReason.FAILED,
                   "error": _message(error), "traceback": storable(traceback.format_exc())}
        keep_slot = False
        raise
    finally:
        if watchdog is not None:
            watchdog.finish()
        reason = outcome.pop("reason", EndReason.FAILED)
        reason = _record_end(ctx, ctx.current_run if ctx is not None else run, reason, outcome, keep_slot=keep_slot)
    return reason


def _stop_reason(run: Run) -> str:
    """Why a run that stopped on request ends: cancelled, terminated or shutdown."""
    stop_requested = Run.objects.filter(pk=run.pk).values_list("stop_requested", flat=True).first()
    return REASON_FOR_STOP.get(stop_requested or StopRequest.CANCEL, EndReason.CANCELLED)


def _record_end(ctx: RunContext | None, run: Run, reason: str, outcome: dict[str, Any], *, keep_slot: bool) -> str:
    """Write the run's last progress and its end, however long the database takes to answer;
    returns the end reason (``"stop"`` becomes the reason the stop was asked for).

    A database that refuses writes for a while (a full disk, a lock held past the busy timeout,
    a dropped connection) is waited for: giving up would leave the run to the reaper, which would
    end it ``crashed`` though it finished. An outcome the database cannot take (a result it
    refuses) is replaced by a message saying so, so the run still ends with its reason.
    """
    refused = False
    for delay in _retry_delays():
        try:
            if reason == "stop":
                reason = _stop_reason(run)
            if ctx is not None:
                ctx.flush(force=True)
            services.finish_run(run, reason=reason, keep_slot=keep_slot, **outcome)
            return reason
        except OperationalError as error:
            _wait_for_database(run, error, delay)
        except (DatabaseError, ValueError) as error:
            if refused:
                raise
            refused = True
            logger.exception("The outcome of run %s cannot be stored; recording its end without it.", run.pk)
            ctx = None
            outcome = {"error": f"The run ended {reason}, but its outcome could not be stored ({type(error).__name__}).",
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


def _call_task(run: Run, ctx: RunContext) -> dict[str, Any]:
    """Call the task code and describe how it ended; the one broad catch around task code."""
    try:
        function = resolve_callable(run.task.callable)
        with contextlib.redirect_stdout(ctx.output_stream), contextlib.redirect_stderr(ctx.output_stream):
            value = function(ctx)
    except RunCancelled:
        return {"reason": "stop"}
    except Exception as error:
        ctx.log.error("%s", _message(error))
        return {"reason": EndReason.FAILED, "error": _message(error), "traceback": storable(traceback.format_exc())}
    if ctx.stop_seen:
        return {"reason": "stop"}
    try:
        result = json_data(value)
    except (TypeError, ValueError) as error:
        return {"reason": EndReason.FAILED, "error": f"The task's return value is not JSON-serialisable: {error}"}
    return {"reason": EndReason.SUCCESS, "result": result}


def json_data(value: Any) -> Any:
    """What task code hands over (result, activity data) as storable JSON: dates and decimals as
    DjangoJSONEncoder writes them, no NaN or infinity (PostgreSQL's jsonb refuses them), text
    made storable."""
    return storable_data(json.loads(json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False)))


def _message(error: BaseException) -> str:
    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return storable(message[:ERROR_MAX_LENGTH])


def _finite(value: Any) -> float | None:
    """A progress figure as a number the database and JSON take (NaN and infinity are not)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class _OutputStream:
    """A file-like sink for print() and stderr inside task code."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx

    def write(self, text: str) -> int:
        self._ctx.write_output(text)
        return len(text)

    def flush(self) -> None:
        pass


class _OutputHandler(logging.Handler):
    def __init__(self, ctx: RunContext) -> None:
        super().__init__(level=logging.DEBUG)
        self._ctx = ctx
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._ctx.write_output(self.format(record) + "\n")
        except Exception:  # a logging handler must never raise into task code
            self.handleError(record)


class RunContext:
    """What task code receives as ``ctx``.

    ``progress``, ``activity`` and output are buffered and written at most every
    ``PROGRESS_INTERVAL`` seconds (the last write always lands, when the run ends), so a tight
    loop costs no more than a few writes a second.
    """

    def __init__(self, run: Run, *, stop_event: threading.Event) -> None:
        self.run_id = run.id
        self.dry_run = run.dry_run
        self.params: Mapping[str, Any] = MappingProxyType(dict(run.parameters))
        self._run = run
        self._stop = stop_event
        self.stop_seen = False
        self._lock = threading.Lock()
        self._last_flush = clock.monotonic()
        self._progress_dirty = False
        self._activity: list[Activity] = []
        self._items: set[str] = set()
        self._actions: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._affected = 0
        self._counts_dirty = False
        self._output_pending: list[str] = []
        self._output_kept = run.output
        self._output_dropped = run.output_dropped
        self._output_max = int(taskdeck_settings.LOG_MAX_SIZE)
        self.output_stream = _OutputStream(self)
        self.log = logging.Logger(f"taskdeck.run.{run.task_id}", level=logging.DEBUG)
        self.log.addHandler(_OutputHandler(self))

    # -- cancellation --

    @property
    def cancelled(self) -> bool:
        """True once someone asked this run to stop (cancel, overlap terminate, shutdown, timeout)."""
        if self._stop.is_set():
            self.stop_seen = True
            return True
        return False

    def check_cancelled(self) -> None:
        """Raise RunCancelled if the run was asked to stop; the run then ends cancelled."""
        if self.cancelled:
            raise RunCancelled()

    # -- progress, activity, output --

    def progress(self, current: float, total: float | None = None, message: str = "") -> None:
        with self._lock:
            self._run.progress_current = _finite(current)
            if total is not None:
                self._run.progress_total = _finite(total)
            self._run.progress_message = storable(str(message)[:500])
            self._progress_dirty = True
        self.flush()

    def activity(
        self,
        *,
        item_id: Any,
        action: str,
        status: str,
        item_title: str = "",
        item_type: str = "",
        message: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> None:
        row = Activity(
            run_id=self.run_id,
            item_id=storable(str(item_id)[:300]),
            item_title=storable(str(item_title)[:500]),
            item_type=storable(str(item_type)[:50]),
            action=storable(str(action)[:50]),
            status=storable(str(status)[:20]),
            message=storable(str(message)),
            data=json_data(dict(data or {})),
            timestamp=clock.now(),
        )
        with self._lock:
            self._activity.append(row)
            self._items.add(row.item_id)
            self._actions[row.action] += 1
            self._statuses[row.status] += 1
            if row.status == "success" and row.action not in NOOP_ACTIONS:
                self._affected += 1
            self._counts_dirty = True
        self.flush()

    def write_output(self, text: str) -> None:
        if text:
            with self._lock:
                self._output_pending.append(storable(text))

    @property
    def current_run(self) -> Run:
        """The run as this context last wrote it (progress and counters included)."""
        return self._run

    def summary(self) -> dict[str, Any]:
        """Derived from the activity rows: distinct items, and counts by action and by status."""
        return {"items": len(self._items), "actions": dict(self._actions), "statuses": dict(self._statuses)}

    def flush(self, *, force: bool = False) -> None:
        """Write what is buffered, if the throttle allows (always when forced).

        A write the database refuses for a while (OperationalError: a full disk, a lock, a lost
        connection) keeps everything buffered for the next flush; task code never sees the error.
        A forced flush (the run's end) raises it instead, so the end can be retried.
        """
        if not force and clock.monotonic() - self._last_flush < taskdeck_settings.PROGRESS_INTERVAL:
            return
        with self._lock:
            self._last_flush = clock.monotonic()
            rows, self._activity = self._activity, []
            pending, self._output_pending = "".join(self._output_pending), []
            progress_dirty, self._progress_dirty = self._progress_dirty, False
            counts_dirty, self._counts_dirty = self._counts_dirty, False
            fields: dict[str, Any] = {}
            if progress_dirty:
                fields.update(
                    progress_current=self._run.progress_current,
                    progress_total=self._run.progress_total,
                    progress_message=self._run.progress_message,
                )
            if counts_dirty:
                self._run.items_processed = len(self._items)
                self._run.items_affected = self._affected
                self._run.summary = self.summary()
                fields.update(items_processed=self._run.items_processed, items_affected=self._affected,
                              summary=self._run.summary)
            output = self._output_after(pending) if pending else None
            if output is not None:
                fields.update(output.fields)
        if not (rows or fields or output):
            return
        try:
            services.record_progress(self._run, fields=fields, activity=rows,
                                     appended_output=output.appended if output is not None else "",
                                     progress_changed=progress_dirty)
        except OperationalError as error:
            with self._lock:  # put it all back, in front of what came meanwhile
                self._activity[:0] = rows
                self._output_pending.insert(0, pending)
                self._progress_dirty |= progress_dirty
                self._counts_dirty |= counts_dirty
            if force:
                raise
            logger.warning("Could not write the progress of run %s (%s); it stays buffered.", self.run_id, error)
            return
        if output is not None:
            self._output_kept, self._output_dropped = output.kept, output.dropped

    def _output_after(self, pending: str) -> _Output:
        """The captured output with ``pending`` appended; past LOG_MAX_SIZE the oldest text is dropped."""
        combined = self._output_kept + pending
        size = len(combined.encode("utf-8"))
        if size <= self._output_max:
            return _Output(combined, self._output_dropped, appended=pending, fields={})
        raw = combined.encode("utf-8")
        cut = size - self._output_max
        kept = raw[cut:].decode("utf-8", errors="ignore")
        dropped = self._output_dropped + size - len(kept.encode("utf-8"))
        return _Output(kept, dropped, appended="", fields={"output": kept, "output_dropped": dropped})


@dataclass(frozen=True)
class _Output:
    """The captured output once a flush lands, and how to write it: ``appended`` to the end of the
    stored output, or ``fields`` replacing it (when the cap dropped its head)."""

    kept: str
    dropped: int
    appended: str
    fields: dict[str, Any]


class Watchdog(threading.Thread):
    """Heartbeats the run, relays stop requests to ``ctx``, and enforces timeout and grace."""

    def __init__(self, run: Run, *, ctx: RunContext, stop_event: threading.Event) -> None:
        super().__init__(name=f"taskdeck-watchdog-{run.id}", daemon=True)
        self.run_id = run.id
        self.timeout = run.task.timeout
        self.ctx = ctx
        self.stop_event = stop_event
        self._done = threading.Event()
        self._began = clock.monotonic()
        self._last_beat = self._began

    def finish(self) -> None:
        self._done.set()
        self.join(timeout=5)

    def run(self) -> None:
        """Tick until the run ends. A tick the database refuses is tried again at the next one:
        the watchdog outlives an outage, and keeps the heartbeat going once the database is back."""
        interval = min(0.5, float(taskdeck_settings.HEARTBEAT_INTERVAL))
        failing = False
        try:
            while not self._done.wait(interval):
                try:
                    self.tick()
                    failing = False
                except OperationalError as error:
                    if not failing:
                        logger.warning("Watchdog of run %s cannot reach the database (%s); still watching.",
                                       self.run_id, error)
                    failing = True
                    connections.close_all()
                except Exception:
                    logger.exception("Watchdog tick of run %s failed; still watching.", self.run_id)
        finally:
            connections.close_all()

    def tick(self) -> None:
        now = clock.monotonic()
        if now - self._last_beat >= taskdeck_settings.HEARTBEAT_INTERVAL:
            self._last_beat = now
            services.beat_run(self.run_id)
        row = Run.objects.filter(pk=self.run_id).values("status", "stop_requested", "stop_requested_at").first()
        if row is None or row["status"] != RunStatus.RUNNING:
            self.stop_event.set()  # ended (or deleted) elsewhere: let cooperative code wind down
            return
        if row["stop_requested"]:
            self.stop_event.set()
            waited = (clock.now() - row["stop_requested_at"]).total_seconds()
            if waited > taskdeck_settings.CANCEL_GRACE:
                reason = REASON_FOR_STOP[row["stop_requested"]]
                self.end_and_kill(reason, f"Did not stop within {taskdeck_settings.CANCEL_GRACE:g} s of being asked; killed.")
        if self.timeout and now - self._began > self.timeout:
            self.stop_event.set()
            self.end_and_kill(EndReason.TIMEOUT, f"Timed out after {self.timeout:g} s.")

    def end_and_kill(self, reason: str, error: str) -> None:
        """End the run, then stop the process running the task code that would not stop."""
        services.finish_run(self.run_id, reason=reason, error=error)
        if multiprocessing.parent_process() is None:
            # Not inside a worker process (an in-process call): never kill the caller.
            logger.error("Run %s ended %s; task code still running in the main process.", self.run_id, reason)
            self._done.set()
            return
        logger.warning("Run %s ended %s; killing worker process %s.", self.run_id, reason, os.getpid())
        connections.close_all()
        os.kill(os.getpid(), signal.SIGKILL)
