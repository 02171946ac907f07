"""The scheduler process's loop: nothing stays running, held runs get their slots.

Each pass reaps runs whose worker is gone (crashed, or timeout if past it) and admits held runs
that have a free slot; once a minute it sends again queued runs whose queue message was lost. Cron and interval ticks, catch-up and retries (issue: scheduling and
policies) join this loop as further steps of ``tick``.
"""
from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections

from tasks_app import services
from tasks_app.conf import taskdeck_settings
from tasks_app.models import Run

logger = logging.getLogger(__name__)

#: Seconds between the scheduler's heartbeats (the health check calls it stale after a minute).
HEARTBEAT_EVERY = 5.0
#: Seconds between looks for queued runs whose queue message was lost.
REDELIVERY_CHECK_INTERVAL = 60.0


class Scheduler:
    def __init__(self, *, interval: float | None = None) -> None:
        self.interval = float(interval if interval is not None else taskdeck_settings.SCHEDULER_INTERVAL)
        self.stopping = threading.Event()
        self._next_redelivery = time.monotonic()
        self._next_beat = time.monotonic()

    def tick(self) -> None:
        """One pass; safe to run from several schedulers at once (every step is conditional)."""
        if time.monotonic() >= self._next_beat:
            self._next_beat = time.monotonic() + HEARTBEAT_EVERY
            services.beat("scheduler")
        services.reap_lost_runs()
        for task_id in Run.objects.held().values_list("task_id", flat=True).distinct():
            services.release_held_runs(task_id)
        if time.monotonic() >= self._next_redelivery:
            self._next_redelivery = time.monotonic() + REDELIVERY_CHECK_INTERVAL
            services.redeliver_lost_runs(older_than=taskdeck_settings.REDELIVER_AFTER)

    def run_forever(self) -> None:
        logger.info("Scheduler running (every %.1f s).", self.interval)
        while not self.stopping.is_set():
            close_old_connections()
            try:
                self.tick()
            except Exception:  # one bad pass must not stop the loop that keeps runs honest
                logger.exception("Scheduler pass failed; retrying in %.1f s.", self.interval)
            self.stopping.wait(self.interval)
        logger.info("Scheduler stopped.")

    def stop(self) -> None:
        self.stopping.set()
