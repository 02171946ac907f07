"""One health computation, for ``GET /api/health`` and the admin dashboard.

The database is ``ok`` only when it takes a write: a full disk or a read-only file still answers
``SELECT 1``, yet no run can start or end. The write is this web process's own heartbeat
(``HeartbeatRole.WEB``), made at most once per ``WriteProbe.every`` seconds so that a client
polling health adds no write load. Workers, the scheduler and the supervisor count when their
heartbeat is fresh (the supervisor only when an enabled service or watcher needs one); ``restarts`` sums what the processes that keep others report: ``serve`` of its children
(web, worker, scheduler), each worker of its cluster.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError

from tasks_app import clock, services
from tasks_app.conf import taskdeck_settings
from tasks_app.db.probes import answers
from tasks_app.models import Heartbeat, HeartbeatRole, Task, TaskKind

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    database: str
    """ok, read_only (answers reads, refuses writes) or error (unreachable)."""
    workers: str
    """ok, none (no fresh worker heartbeat) or unknown."""
    scheduler: str
    """ok, stale or unknown."""
    supervisor: str = "unknown"
    """ok (a fresh supervisor heartbeat), none (a service or a watcher is enabled and no supervisor
    runs it), idle (no supervisor, and nothing enabled needs one) or unknown."""
    restarts: dict[str, int] = field(default_factory=dict)
    """Processes started again after dying, by name: serve's children (web, worker, scheduler)
    and worker clusters (cluster)."""

    @property
    def status(self) -> str:
        """error when the database cannot serve Taskdeck; degraded when a process is missing."""
        if self.database != "ok":
            return "error"
        return ("ok" if self.workers == "ok" and self.scheduler == "ok" and self.supervisor in ("ok", "idle")
                else "degraded")


class WriteProbe:
    """Whether the database took this process's last heartbeat write, tried at most every ``every`` s."""

    def __init__(self, *, every: float = 1.0) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._tried_at: float | None = None
        self._writable = True

    def writable(self) -> bool:
        with self._lock:
            if self._tried_at is not None and clock.monotonic() - self._tried_at < self.every:
                return self._writable
            try:
                services.beat(HeartbeatRole.WEB)
                self._writable = True
            except DatabaseError as error:
                if self._writable:
                    logger.warning("The database refuses writes: %s", error)
                self._writable = False
            self._tried_at = clock.monotonic()
            return self._writable


#: This process's probe (each web process proves its own connection can write).
probe = WriteProbe()


def check(*, now: datetime | None = None) -> Health:
    now = now or clock.now()
    try:
        answers()
        writable = probe.writable()
        fresh = Heartbeat.objects.filter(seen_at__gte=now - taskdeck_settings.HEALTH_FRESH_FOR)
        beats = list(fresh.values_list("role", "details"))
        roles = {role for role, _ in beats}
        services_wanted = HeartbeatRole.SUPERVISOR not in roles and Task.objects.present().filter(
            kind__in=[TaskKind.SERVICE, TaskKind.WATCHER], enabled=True).exists()
    except DatabaseError:
        return Health(database="error", workers="unknown", scheduler="unknown")
    restarts: Counter[str] = Counter()
    for _, details in beats:
        restarts.update({name: int(count) for name, count in (details.get("restarts") or {}).items()})
    return Health(
        database="ok" if writable else "read_only",
        workers="ok" if HeartbeatRole.WORKER in roles else "none",
        scheduler="ok" if HeartbeatRole.SCHEDULER in roles else "stale",
        supervisor="ok" if HeartbeatRole.SUPERVISOR in roles else ("none" if services_wanted else "idle"),
        restarts=dict(restarts),
    )
