"""The worker process (``manage.py worker``): a django-q2 cluster that Taskdeck keeps honest.

django-q2's ``qcluster`` forks a sentinel, which forks a pusher, a monitor and the workers that
execute runs. Three things it does not do, this keeper does:

* **Nothing it forks outlives its parent.** Every process forked here, and every process those
  fork, gets SIGKILL from the kernel when its parent dies (Linux's parent-death signal). A killed
  sentinel or keeper never leaves workers behind still taking runs; the runs they held end
  ``crashed`` (the reaper finds their pids gone), and are retried if their policy says so.
* **A stop ends runs promptly.** On SIGTERM or SIGINT (Ctrl-C, ``serve`` stopping, or ``serve``
  dying: its children get SIGTERM then) the cluster's runs are asked to stop, get ``grace``
  seconds, then the cluster is killed and what still ran ends ``shutdown``. django-q2's own stop
  waits for every running task to finish, however long.
* **A dead sentinel is replaced.** The cluster starts again after a pause that grows with each
  quick death, and queued runs whose queue messages died with it are sent again at once.
"""
from __future__ import annotations

import logging
import os
import signal

from django.db import DatabaseError

from tasks_app import clock, services
from tasks_app.models import HeartbeatRole
from tasks_app.platform import children
from tasks_app.platform.stopflag import StopFlag
from tasks_app.queue.cluster import Cluster

logger = logging.getLogger(__name__)

#: Seconds to wait before starting a cluster again after its first, second, ... quick death.
RESTART_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
#: A cluster up this long (seconds) was healthy: its death starts the count again.
HEALTHY_AFTER = 30.0
#: Quick deaths in a row after which the worker gives up (exit code 1).
GIVE_UP_AFTER = 5
#: Seconds between the keeper's heartbeats.
HEARTBEAT_EVERY = 5.0

_forking_parent = 0


def _remember_parent() -> None:
    global _forking_parent
    _forking_parent = os.getpid()


def _die_with_forking_parent() -> None:
    """In every process forked below the keeper: die with the parent that forked it."""
    children.die_with_parent(signal.SIGKILL)
    if os.getppid() != _forking_parent:  # the parent died before the signal was armed
        os._exit(1)


class Worker:
    def __init__(self, *, grace: float) -> None:
        self.grace = grace
        self.stopping = StopFlag()
        self.restarts = 0
        """Times the cluster was started again after its sentinel died (shown by /api/health)."""
        self._next_beat = 0.0

    def run_forever(self) -> int:
        """Keep a cluster running until SIGTERM or SIGINT; returns the exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.stopping.signal)
        os.register_at_fork(before=_remember_parent, after_in_child=_die_with_forking_parent)
        quick_deaths = 0
        while not self.stopping.is_set():
            cluster = Cluster()
            cluster.start()
            started = clock.monotonic()
            logger.info("Worker cluster running (pid %s).", os.getpid())
            self.resend_lost_messages()
            while cluster.alive() and not self.stopping.wait(0.2):
                self.beat()
            if self.stopping.is_set():
                self.stop(cluster)
                return 0
            quick_deaths = quick_deaths + 1 if clock.monotonic() - started < HEALTHY_AFTER else 1
            self.after_death(cluster)
            if quick_deaths >= GIVE_UP_AFTER:
                logger.error("The worker cluster died %d times in a row; giving up.", quick_deaths)
                return 1
            delay = RESTART_DELAYS[min(quick_deaths, len(RESTART_DELAYS)) - 1]
            logger.error("The worker cluster died (sentinel exit code %s); starting it again in %g s.",
                         cluster.exit_code, delay)
            self.stopping.wait(delay)
            self.restarts += 1
            self._next_beat = 0.0
        return 0

    def beat(self) -> None:
        """Every HEARTBEAT_EVERY s: this cluster is alive, and how often it was started again."""
        if clock.monotonic() < self._next_beat:
            return
        self._next_beat = clock.monotonic() + HEARTBEAT_EVERY
        try:
            services.beat(HeartbeatRole.WORKER, details={"restarts": {"cluster": self.restarts}})
        except DatabaseError as error:
            logger.warning("The worker could not write its heartbeat (%s).", error)

    def cluster_pids(self) -> set[int]:
        return children.descendants(os.getpid())

    def stop(self, cluster: Cluster) -> None:
        """Runs asked to stop, ``grace`` seconds, then the cluster killed; what still ran ends shutdown."""
        pids = self.cluster_pids()
        try:
            asked = services.request_shutdown(pids=pids)
        except DatabaseError as error:
            logger.warning("Could not ask the cluster's runs to stop (%s).", error)
            asked = 0
        cluster.stop_taking_work()
        if asked:
            logger.info("Stopping: %d running run(s) asked to stop; %g s to do so.", asked, self.grace)
        if not cluster.wait(self.grace):
            leftovers = self.cluster_pids()
            logger.warning("The cluster did not stop within %g s; killing %d process(es).", self.grace, len(leftovers))
            children.kill_all(leftovers)
            cluster.wait(5)
        try:
            ended = services.end_shutdown_runs(pids=pids)
        except DatabaseError as error:
            logger.warning("Could not end the cluster's last runs (%s); the next start ends them.", error)
            return
        if ended:
            logger.info("Ended %d run(s) as shutdown.", len(ended))

    def after_death(self, cluster: Cluster) -> None:
        """The sentinel died and took its workers with it: their runs end crashed now."""
        children.kill_all(self.cluster_pids())  # anything a dying sentinel forked at that instant
        try:
            lost = services.reap_lost_runs()
        except DatabaseError as error:
            logger.warning("Could not end the runs of the dead cluster (%s); the scheduler will.", error)
            return
        if lost:
            logger.warning("Ended %d run(s) of the dead cluster as crashed.", len(lost))

    def resend_lost_messages(self) -> None:
        """Queued runs whose messages a dead cluster had taken are sent again (a second delivery of
        one still on its way elsewhere is harmless: only one claim wins)."""
        try:
            sent = services.redeliver_lost_runs(older_than=0)
        except DatabaseError as error:
            logger.warning("Could not look for lost queue messages (%s); the scheduler will.", error)
            return
        if sent:
            logger.info("Sent %d queued run(s) again.", len(sent))
