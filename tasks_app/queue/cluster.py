"""django-q2's worker cluster, forked from the worker process that keeps it (``workers.Worker``)."""
from __future__ import annotations

import signal
import threading

from django.db import connections

#: Seconds ``stop_taking_work`` waits for django-q2's stop event to be set.
SET_WITHIN = 2.0


class Cluster:
    """django-q2's worker cluster (sentinel, pusher, monitor, workers), forked from this process.

    ``workers.Worker`` keeps it: django-q2's own signal handling is taken back, because its stop
    waits for every running task to finish, however long that takes.
    """

    def __init__(self) -> None:
        from django_q.cluster import Cluster as QCluster

        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        self._cluster = QCluster()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)

    def start(self) -> None:
        """Fork the sentinel, which forks the rest; returns once it is up."""
        connections.close_all()  # never share a database connection with the forked processes
        self._cluster.start()

    def alive(self) -> bool:
        sentinel = self._cluster.sentinel
        return sentinel is not None and sentinel.is_alive()

    @property
    def exit_code(self) -> int | None:
        sentinel = self._cluster.sentinel
        return sentinel.exitcode if sentinel is not None else None

    def stop_taking_work(self) -> None:
        """The pusher stops taking messages; each worker exits once its current run ends.

        django-q2's stop event is a multiprocessing Event: setting it waits for every process
        sleeping on it to wake, and one killed meanwhile (Ctrl-C in a terminal reaches the whole
        process group) never does. So it is set from a thread given ``SET_WITHIN`` seconds; past
        them the caller goes on, and the grace then the kill stop the cluster anyway."""
        event = self._cluster.stop_event
        if event is None:
            return
        setter = threading.Thread(target=event.set, name="taskdeck-stop-cluster", daemon=True)
        setter.start()
        setter.join(SET_WITHIN)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the sentinel to exit; True if it did."""
        sentinel = self._cluster.sentinel
        if sentinel is None:
            return True
        sentinel.join(max(0.0, timeout))
        return not sentinel.is_alive()
