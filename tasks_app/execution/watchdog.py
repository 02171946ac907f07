"""The thread that watches one run while its code runs: ``Watchdog``.

It heartbeats the run (the reaper ends runs whose heartbeat went stale), relays stop requests
(cancel, overlap terminate, shutdown) to the run's code through the shared stop event, and
enforces the task's timeout and the grace a stop request gets. Code that does not stop in time
cannot be interrupted from another thread, so the watchdog ends the run itself and kills its own
worker process (and what is left of the run's process group): django-q2's guard then starts a
fresh worker.

Python code may never look at its stop event: a stop request gets ``CANCEL_GRACE`` seconds, a
timeout none. An executor that stops its run's code itself (a command's group: ``stop_signal``,
then SIGKILL after ``graceful_stop``) says within how long (``stops_within``); a timeout then only
asks it to stop, and both get that long plus ``STOP_MARGIN`` before the worker is killed.

Apart from the executors because every kind of task needs the same watching.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import select
import signal
import socket
import threading

from django.db import OperationalError, connections

from tasks_app import clock, services
from tasks_app.conf import taskdeck_settings
from tasks_app.execution.context import RunContext
from tasks_app.models import REASON_FOR_STOP, EndReason, Run, RunStatus
from tasks_app.platform import groups, wakeups

logger = logging.getLogger(__name__)

#: Seconds past an executor's own ``stops_within`` before the watchdog kills the worker: room for
#: reading the last output and for a slow database.
STOP_MARGIN = 5.0


class Watchdog(threading.Thread):
    """Heartbeats the run, relays stop requests to ``ctx``, and enforces timeout and grace."""

    def __init__(self, run: Run, *, ctx: RunContext, stop_event: threading.Event,
                 stops_within: float | None = None) -> None:
        super().__init__(name=f"taskdeck-watchdog-{run.id}", daemon=True)
        self.run_id = run.id
        self.timeout = run.task.timeout
        self.stops_within = stops_within
        self._timed_out_at: float | None = None
        self.ctx = ctx
        self.stop_event = stop_event
        self._done = threading.Event()
        self._listener = wakeups.listen(services.stop_wakeup(run.id))
        """Bound before the thread starts: a run that ends at once must not wake a watchdog not
        listening yet (its half-second sleep would hold up the run's end)."""
        self._began = clock.monotonic()
        self._last_beat = self._began

    def finish(self) -> None:
        self._done.set()
        wakeups.wake(self.wakeup_name)
        self.join(timeout=5)

    @property
    def wakeup_name(self) -> str:
        """What a stop request made on this host wakes (``services.stop_wakeup``)."""
        return services.stop_wakeup(self.run_id)

    def run(self) -> None:
        """Tick until the run ends: every half second, and at once when a stop request made on
        this host wakes it. A tick the database refuses is tried again at the next one: the
        watchdog outlives an outage, and keeps the heartbeat going once the database is back."""
        interval = min(0.5, float(taskdeck_settings.HEARTBEAT_INTERVAL))
        failing = False
        listener = self._listener
        try:
            while not self._sleep(interval, listener):
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
            if listener is not None:
                listener.close()
            connections.close_all()

    def _sleep(self, seconds: float, listener: socket.socket | None) -> bool:
        """Wait ``seconds``, or less when woken; True once the run is done."""
        if listener is None:
            return self._done.wait(seconds)
        if select.select([listener], [], [], seconds)[0]:
            wakeups.drain(listener)
        return self._done.is_set()

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
            grace = self.grace
            if waited > grace:
                reason = REASON_FOR_STOP[row["stop_requested"]]
                self.end_and_kill(reason, f"Did not stop within {grace:g} s of being asked; killed.")
                return
        if self.timeout and now - self._began > self.timeout:
            if self.stops_within is None:
                self.stop_event.set()
                self.end_and_kill(EndReason.TIMEOUT, f"Timed out after {self.timeout:g} s.")
            elif self._timed_out_at is None:
                self._timed_out_at = now
                self.ctx.timed_out_after = self.timeout
                self.stop_event.set()
            elif now - self._timed_out_at > self.grace:
                self.end_and_kill(EndReason.TIMEOUT, f"Timed out after {self.timeout:g} s; did not stop within "
                                                     f"{self.grace:g} s of being asked; killed.")

    @property
    def grace(self) -> float:
        """Seconds the run's code gets to stop once asked, before the worker is killed."""
        if self.stops_within is None:
            return float(taskdeck_settings.CANCEL_GRACE)
        return self.stops_within + STOP_MARGIN

    def end_and_kill(self, reason: str, error: str) -> None:
        """Store the run's output so far, end the run, then stop the process running the task code
        that would not stop (its log ends before the run does, as log streams expect)."""
        try:
            self.ctx.close_log()
        except OperationalError as failure:
            logger.warning("Run %s: its last output could not be stored (%s).", self.run_id, failure)
        services.finish_run(self.run_id, reason=reason, error=error)
        if self.ctx.process_group is not None:
            groups.kill_group(self.ctx.process_group)
        if multiprocessing.parent_process() is None:
            # Not inside a worker process (an in-process call): never kill the caller.
            logger.error("Run %s ended %s; task code still running in the main process.", self.run_id, reason)
            self._done.set()
            return
        logger.warning("Run %s ended %s; killing worker process %s.", self.run_id, reason, os.getpid())
        connections.close_all()
        os.kill(os.getpid(), signal.SIGKILL)
