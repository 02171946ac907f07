"""Processes saying they are alive, for the health check and the dashboard."""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from django.db import OperationalError, connection

from tasks_app import clock
from tasks_app.models import Heartbeat, HeartbeatRole
from tasks_app.services.lookups import HOSTNAME

#: Seconds between a worker's heartbeats.
WORKER_HEARTBEAT_EVERY = 10.0

logger = logging.getLogger(__name__)


def beat(role: str, *, details: dict[str, Any] | None = None) -> None:
    """Record that this process is alive (and what it reports, when it has ``details``)."""
    now = clock.now()
    fields: dict[str, Any] = {"seen_at": now} if details is None else {"seen_at": now, "details": details}
    updated = Heartbeat.objects.filter(role=role, host=HOSTNAME, pid=os.getpid()).update(**fields)
    if not updated:
        Heartbeat.objects.get_or_create(role=role, host=HOSTNAME, pid=os.getpid(), defaults=fields)


def beat_worker_in_background() -> None:
    """In a worker process (queue.hooks.on_worker_start): beat every WORKER_HEARTBEAT_EVERY s from a
    thread of its own, busy or idle, for as long as the process lives."""

    def loop() -> None:
        failing = False
        while True:
            try:
                beat(HeartbeatRole.WORKER)
                failing = False
            except OperationalError as error:  # a full disk, a lock: health reports the database
                if not failing:
                    logger.warning("Worker heartbeat refused by the database (%s).", error)
                failing = True
            except Exception:  # a missed beat only makes the health check say "none" for a while
                logger.exception("Worker heartbeat failed")
            connection.close()
            time.sleep(WORKER_HEARTBEAT_EVERY)

    threading.Thread(target=loop, name="taskdeck-worker-heartbeat", daemon=True).start()
