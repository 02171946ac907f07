"""Every write path of one task at the same time: no deadlock, no error, every run terminal.

SQLite's single writer hides lock-order bugs; this test matters on PostgreSQL (``make test`` runs
it there first). Clients trigger one task (forced, and through its ``queue`` policy), the
session's real worker cluster claims and finishes runs, threads standing in for more workers
claim and finish too, another cancels, another sweeps retention, all at once.
"""
from __future__ import annotations

import random
import threading
import traceback
from collections.abc import Callable

import pytest
from django.db import connection
from django.db.models import Count

from tasks_app import retention, services
from tasks_app.exceptions import TaskdeckError
from tasks_app.models import EndReason, Run, RunCount, RunStatus, RunTrigger

from .conftest import wait_until
from .factories import make_task

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("qcluster")]

CLIENTS = 4
TRIGGERS_PER_CLIENT = 60


class Crowd:
    """Threads writing at once: clients that do their part and end, and helpers that repeat
    theirs until the clients are done. Any exception is kept, with its traceback."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.clients: list[threading.Thread] = []
        self.helpers: list[threading.Thread] = []

    def _thread(self, work: Callable[[], None], *, repeat: bool) -> threading.Thread:
        def loop() -> None:
            try:
                while True:
                    work()
                    if not repeat or self.stopping.is_set():
                        return
            except Exception:  # the test's point: whatever it is, it is reported
                self.errors.append(traceback.format_exc())
            finally:
                connection.close()

        return threading.Thread(target=loop)

    def client(self, work: Callable[[], None]) -> None:
        self.clients.append(self._thread(work, repeat=False))

    def helper(self, work: Callable[[], None]) -> None:
        self.helpers.append(self._thread(work, repeat=True))

    def run(self, *, timeout: float = 120) -> None:
        for thread in self.clients + self.helpers:
            thread.start()
        try:
            wait_until(lambda: not any(thread.is_alive() for thread in self.clients), timeout=timeout,
                       interval=0.1, what="the clients to finish")
        finally:
            self.stopping.set()
            for thread in self.clients + self.helpers:
                thread.join(60)


def test_triggers_claims_finishes_cancels_and_retention_of_one_task_never_deadlock():
    task = make_task(id="hot", callable="tests.sample_tasks.noop", max_concurrent=4, on_overlap="queue",
                     queue_max=100_000, keep_runs=20)
    crowd = Crowd()

    def client(force: bool) -> Callable[[], None]:
        def trigger_all() -> None:
            for _ in range(TRIGGERS_PER_CLIENT):
                services.trigger(task.pk, source=RunTrigger.API, requested_by="crowd", force=force)
        return trigger_all

    def worker() -> None:
        """Claims and finishes what it can, like one more worker process."""
        queued = list(Run.objects.filter(task_id=task.pk, status=RunStatus.QUEUED, enqueued_at__isnull=False)
                      .values_list("pk", flat=True)[:5])
        for run_id in queued:
            run = services.claim_run(run_id, task_id=task.pk)
            if run is not None:
                services.finish_run(run, reason=random.choice([EndReason.SUCCESS, EndReason.FAILED]))

    def canceller() -> None:
        run_id = Run.objects.filter(task_id=task.pk, status=RunStatus.QUEUED).order_by("?").values_list(
            "pk", flat=True).first()
        if run_id is not None:
            try:
                services.cancel_run(run_id)
            except TaskdeckError:  # it ended meanwhile
                pass

    def sweeper() -> None:
        retention.sweep(batch_size=7)

    for index in range(CLIENTS):
        crowd.client(client(force=index % 2 == 0))
    for _ in range(3):
        crowd.helper(worker)
    crowd.helper(canceller)
    crowd.helper(sweeper)
    crowd.run()

    assert crowd.errors == [], crowd.errors[0]
    wait_until(lambda: not Run.objects.filter(task_id=task.pk).active().exists(), timeout=120, interval=0.2,
               what="every run to end")
    # The counters the database keeps by trigger agree with the rows, after all that.
    actual = dict(Run.objects.filter(task_id=task.pk).order_by().values_list("status").annotate(n=Count("pk")))
    kept = {status: count for status, count in RunCount.objects.filter(task_id=task.pk).values_list("status", "count")
            if count}
    assert kept == actual
