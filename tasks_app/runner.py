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
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from uuid import UUID

from django.core.serializers.json import DjangoJSONEncoder
from django.db import OperationalError, connections, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat

from tasks_app import clock, events, services
from tasks_app.conf import taskdeck_settings
from tasks_app.models import REASON_FOR_STOP, Activity, EndReason, EventName, Run, RunStatus, StopRequest
from tasks_app.registry import resolve_callable

logger = logging.getLogger(__name__)

#: Activity actions that leave the item as it was; every other successful action "affects" it.
NOOP_ACTIONS = frozenset({"keep", "skip", "none", "noop", "unchanged"})
ERROR_MAX_LENGTH = 2000


class RunCancelled(Exception):
    """Raised by ``ctx.check_cancelled()``; ends the run cancelled (or terminated, shutdown)."""


def execute_run(run_id: str | UUID, task_id: str | None = None) -> str:
    """django-q2's entry point. Returns a short note for django-q2's own logs."""
    run = services.claim_run(run_id, task_id)
    if run is None:
        return "not claimed (already taken, ended or removed)"
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
                   "error": _message(error), "traceback": traceback.format_exc()}
        raise
    finally:
        if watchdog is not None:
            watchdog.finish()
        if ctx is not None:
            try:
                ctx.flush(force=True)
            except Exception:  # the run must still end, even if its last progress cannot be written
                logger.exception("Could not write the final progress of run %s.", run.pk)
        reason = outcome.pop("reason", EndReason.FAILED)
        if reason == "stop":
            stop_requested = Run.objects.filter(pk=run.pk).values_list("stop_requested", flat=True).first()
            reason = REASON_FOR_STOP.get(stop_requested or StopRequest.CANCEL, EndReason.CANCELLED)
        _finish(ctx.current_run if ctx is not None else run, reason, outcome)
    return reason


def _finish(run: Run, reason: str, outcome: dict[str, Any], *, attempts: int = 3) -> None:
    """Record the end; a database that stays locked past its busy timeout gets a few more tries,
    since giving up would leave the run for the reaper to end as crashed though it finished."""
    for attempt in range(1, attempts + 1):
        try:
            services.finish_run(run, reason, **outcome)
            return
        except OperationalError:
            if attempt == attempts:
                raise
            logger.warning("Could not record the end of run %s (attempt %d); retrying.", run.pk, attempt)
            time.sleep(attempt)


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
        return {"reason": EndReason.FAILED, "error": _message(error), "traceback": traceback.format_exc()}
    if ctx.stop_seen:
        return {"reason": "stop"}
    try:
        result = json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    except (TypeError, ValueError) as error:
        return {"reason": EndReason.FAILED, "error": f"The task's return value is not JSON-serialisable: {error}"}
    return {"reason": EndReason.SUCCESS, "result": result}


def _message(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text[:ERROR_MAX_LENGTH]


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
        self._last_flush = time.monotonic()
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
            self._run.progress_current = current
            if total is not None:
                self._run.progress_total = total
            self._run.progress_message = str(message)[:500]
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
            item_id=str(item_id)[:300],
            item_title=str(item_title)[:500],
            item_type=str(item_type)[:50],
            action=str(action)[:50],
            status=str(status)[:20],
            message=str(message),
            data=json.loads(json.dumps(dict(data or {}), cls=DjangoJSONEncoder)),
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
                self._output_pending.append(text)

    @property
    def current_run(self) -> Run:
        """The run as this context last wrote it (progress and counters included)."""
        return self._run

    def summary(self) -> dict[str, Any]:
        """Derived from the activity rows: distinct items, and counts by action and by status."""
        return {"items": len(self._items), "actions": dict(self._actions), "statuses": dict(self._statuses)}

    def flush(self, *, force: bool = False) -> None:
        """Write what is buffered, if the throttle allows (always when forced)."""
        if not force and time.monotonic() - self._last_flush < taskdeck_settings.PROGRESS_INTERVAL:
            return
        with self._lock:
            self._last_flush = time.monotonic()
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
            if pending:
                fields.update(self._output_fields(pending))
        if not (rows or fields):
            return
        with transaction.atomic():
            if rows:
                Activity.objects.bulk_create(rows)
            if fields:
                Run.objects.filter(pk=self.run_id).update(**fields)
            if progress_dirty:
                events.emit_run_event(EventName.PROGRESS, self._run, message=self._run.progress_message)

    def _output_fields(self, pending: str) -> dict[str, Any]:
        """Append to the captured output; past LOG_MAX_SIZE the oldest text is dropped."""
        combined = self._output_kept + pending
        size = len(combined.encode("utf-8"))
        if size <= self._output_max:
            self._output_kept = combined
            return {"output": Concat(F("output"), Value(pending))}
        raw = combined.encode("utf-8")
        cut = size - self._output_max
        kept = raw[cut:].decode("utf-8", errors="ignore")
        self._output_dropped += size - len(kept.encode("utf-8"))
        self._output_kept = kept
        return {"output": kept, "output_dropped": self._output_dropped}


class Watchdog(threading.Thread):
    """Heartbeats the run, relays stop requests to ``ctx``, and enforces timeout and grace."""

    def __init__(self, run: Run, *, ctx: RunContext, stop_event: threading.Event) -> None:
        super().__init__(name=f"taskdeck-watchdog-{run.id}", daemon=True)
        self.run_id = run.id
        self.timeout = run.task.timeout
        self.ctx = ctx
        self.stop_event = stop_event
        self._done = threading.Event()
        self._began = time.monotonic()
        self._last_beat = self._began

    def finish(self) -> None:
        self._done.set()
        self.join(timeout=5)

    def run(self) -> None:
        interval = min(0.5, float(taskdeck_settings.HEARTBEAT_INTERVAL))
        try:
            while not self._done.wait(interval):
                self.tick()
        except Exception:
            logger.exception("Watchdog of run %s failed; the reaper will watch its heartbeat.", self.run_id)
        finally:
            connections.close_all()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last_beat >= taskdeck_settings.HEARTBEAT_INTERVAL:
            self._last_beat = now
            Run.objects.filter(pk=self.run_id, status=RunStatus.RUNNING).update(heartbeat_at=clock.now())
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
        services.finish_run(self.run_id, reason, error=error)
        if multiprocessing.parent_process() is None:
            # Not inside a worker process (an in-process call): never kill the caller.
            logger.error("Run %s ended %s; task code still running in the main process.", self.run_id, reason)
            self._done.set()
            return
        logger.warning("Run %s ended %s; killing worker process %s.", self.run_id, reason, os.getpid())
        connections.close_all()
        os.kill(os.getpid(), signal.SIGKILL)
