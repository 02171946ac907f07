"""What task code receives as ``ctx`` (``RunContext``), and ``RunCancelled``, which
``ctx.check_cancelled()`` raises.

The context buffers what task code reports (progress, activity rows) and writes it through
``services.record_progress`` at most every ``PROGRESS_INTERVAL`` seconds; its last write lands
when the run ends (``entry`` forces it). Output (print, ``ctx.log``) goes to the run's log through
a ``LogWriter`` (``output.py``), capped at ``LOG_MAX_SIZE`` bytes, ``drop_old``, until python
tasks have settings of their own. A stop request reaches it from the watchdog through the shared
stop event; a log that overflows with ``kill_task`` sets that event itself.
"""
from __future__ import annotations

import json
import logging
import math
import threading
from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import OperationalError

from tasks_app import clock, services
from tasks_app.conf import taskdeck_settings
from tasks_app.execution.output import LogWriter
from tasks_app.models import Activity, LogOnFull, Run
from tasks_app.text import output_bytes, storable, storable_data

logger = logging.getLogger(__name__)

#: Activity actions that leave the item as it was; every other successful action "affects" it.
NOOP_ACTIONS = frozenset({"keep", "skip", "none", "noop", "unchanged"})


class RunCancelled(Exception):
    """Raised by ``ctx.check_cancelled()``; ends the run cancelled (or terminated, shutdown)."""


def json_data(value: Any) -> Any:
    """What task code hands over (result, activity data) as storable JSON: dates and decimals as
    DjangoJSONEncoder writes them, no NaN or infinity (PostgreSQL's jsonb refuses them), text
    made storable."""
    return storable_data(json.loads(json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False)))


def _finite(value: Any) -> float | None:
    """A progress figure as a number the database and JSON take (NaN and infinity are not)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class _OutputStream:
    """A file-like sink for print() and stderr inside task code."""

    def __init__(self, output: LogWriter) -> None:
        self._output = output

    def write(self, text: str) -> int:
        self._output.write(output_bytes(text))
        return len(text)

    def flush(self) -> None:
        pass


class _OutputHandler(logging.Handler):
    """``ctx.log``'s records, one line each, into the run's output."""

    def __init__(self, output: LogWriter) -> None:
        super().__init__(level=logging.DEBUG)
        self._output = output
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._output.write(output_bytes(self.format(record) + "\n"))
        except Exception:  # a logging handler must never raise into task code
            self.handleError(record)


class RunContext:
    """What task code receives as ``ctx``.

    ``progress``, ``activity`` and output are buffered and written at most every
    ``PROGRESS_INTERVAL`` seconds (the last write always lands, when the run ends), so a tight
    loop costs no more than a few writes a second. Output goes to the run's log (``log_writer``),
    by default capped as python runs are today: ``LOG_MAX_SIZE`` bytes, ``drop_old``.
    """

    def __init__(self, run: Run, *, stop_event: threading.Event, log_max_size: int | None = None,
                 log_on_full: str = LogOnFull.DROP_OLD) -> None:
        self.run_id = run.id
        self.dry_run = run.dry_run
        self.params: Mapping[str, Any] = MappingProxyType(dict(run.parameters))
        self._run = run
        self._stop = stop_event
        self.stop_seen = False
        self.process_group: int | None = None
        """The process group the run's executor started (command runs): the watchdog kills what is
        left of it before it kills the worker."""
        self.timed_out_after: float | None = None
        """Set by the watchdog (seconds) when the run's timeout passed and its executor stops the
        code itself (command runs): the run then ends ``timeout``."""
        self._lock = threading.Lock()
        self._last_flush = clock.monotonic()
        self._progress_dirty = False
        self._activity: list[Activity] = []
        self._items: set[str] = set()
        self._actions: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._affected = 0
        self._counts_dirty = False
        max_size = int(taskdeck_settings.LOG_MAX_SIZE) if log_max_size is None else log_max_size
        self.log_writer = LogWriter(run.id, task_id=run.task_id, max_size=max_size, on_full=log_on_full,
                                    on_overflow=stop_event.set)
        self.output_stream = _OutputStream(self.log_writer)
        self.log = logging.Logger(f"taskdeck.run.{run.task_id}", level=logging.DEBUG)
        self.log.addHandler(_OutputHandler(self.log_writer))

    # -- cancellation --

    @property
    def cancelled(self) -> bool:
        """True once someone asked this run to stop (cancel, overlap terminate, shutdown, timeout)."""
        if self._stop.is_set():
            self.stop_seen = True
            return True
        return False

    @property
    def stop_requested(self) -> bool:
        """Whether the run was asked to stop, for its executor (task code reads ``cancelled``)."""
        return self._stop.is_set()

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
        """Text into the run's log, as print() and ``ctx.log`` inside task code write it."""
        self.log_writer.write(output_bytes(text))

    @property
    def log_overflowed(self) -> bool:
        """The run's log passed its cap with ``kill_task``: the run ends ``log_overflow``."""
        return self.log_writer.overflowed

    def close_log(self) -> None:
        """The run's code is done: store the rest of its output (``LogWriter.close``); raises
        OperationalError if the database refuses, and may be called again."""
        self.log_writer.close()

    @property
    def current_run(self) -> Run:
        """The run as this context last wrote it (progress and counters included)."""
        return self._run

    def summary(self) -> dict[str, Any]:
        """Derived from the activity rows: distinct items, and counts by action and by status."""
        return {"items": len(self._items), "actions": dict(self._actions), "statuses": dict(self._statuses)}

    def flush(self, *, force: bool = False) -> None:
        """Write what is buffered, if the throttle allows (always when forced; then the output
        waiting is stored too, which otherwise the log flusher does on its own schedule).

        A write the database refuses for a while (OperationalError: a full disk, a lock, a lost
        connection) keeps everything buffered for the next flush; task code never sees the error.
        A forced flush (the run's end) raises it instead, so the end can be retried.
        """
        if force:
            self.log_writer.flush()
        if not force and clock.monotonic() - self._last_flush < taskdeck_settings.PROGRESS_INTERVAL:
            return
        with self._lock:
            self._last_flush = clock.monotonic()
            rows, self._activity = self._activity, []
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
        if not (rows or fields):
            return
        try:
            services.record_progress(self._run, fields=fields, activity=rows, progress_changed=progress_dirty)
        except OperationalError as error:
            with self._lock:  # put it all back, in front of what came meanwhile
                self._activity[:0] = rows
                self._progress_dirty |= progress_dirty
                self._counts_dirty |= counts_dirty
            if force:
                raise
            logger.warning("Could not write the progress of run %s (%s); it stays buffered.", self.run_id, error)
