"""Hands runs to django-q2. The only module that imports django_q.

Handing over has two halves, so the caller's write transaction stays short:

* ``prepare(run)``, before the transaction: django-q2 builds and signs its task package;
* ``enqueue(package)``, inside the transaction that admits the run. With the ORM broker (the
  default) the queue row is written in that same transaction, so a worker can see it only once
  the run is committed, and a crash can never commit one without the other. With the Redis
  broker the message is sent on commit.

Either way a second delivery is harmless: the worker's claim (queued -> running) lets only one
execution through.
"""
from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from functools import cache
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signing import BadSignature
from django.db import connections, transaction
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signals import post_spawn
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from tasks_app.conf import taskdeck_settings
from tasks_app.models import Run

EXECUTE = "tasks_app.execution.entry.execute_run"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Package:
    """A signed django-q2 task package, ready for the broker."""

    signed: str


class _PackageCatcher:
    """Stands in for a broker in async_task, keeping the package instead of sending it.

    So django-q2 itself builds its package (its format stays its own business) while the write
    to the real broker happens later, inside the caller's transaction.
    """

    def __init__(self, list_key: str) -> None:
        self.list_key = list_key
        self.signed = ""

    def enqueue(self, signed: str) -> int:
        self.signed = signed
        return 0


@cache
def _broker() -> Broker:
    """One broker per process: async_task would otherwise build a new one per call."""
    return get_broker()


def prepare(run: Run) -> Package:
    """Build the package that makes a worker execute ``run`` (no database access)."""
    options = {"task_name": f"{run.task_id}:{run.id}", "save": False, "ack_failure": True}
    if run.task.timeout:
        # django-q2's guard is only a backstop: the run's own watchdog ends it first.
        options["timeout"] = int(run.task.timeout + taskdeck_settings.CANCEL_GRACE + 30)
    catcher = _PackageCatcher(_broker().list_key)
    async_task(EXECUTE, str(run.id), run.task_id, broker=catcher, **options)
    return Package(catcher.signed)


def enqueue(package: Package) -> None:
    """Queue a prepared package. Call inside the transaction that admits the run."""
    enqueue_many([package])


def enqueue_many(packages: list[Package]) -> None:
    """Queue prepared packages, inside the transaction that admits their runs: one statement
    (ORM broker, so a worker sees them only once the runs are committed) or one push on commit
    (Redis)."""
    if not packages:
        return
    broker = _broker()
    if settings.Q_CLUSTER.get("orm"):
        now = timezone.now()  # django-q2 stamps its rows with its own clock
        OrmQ.objects.using(Conf.ORM).bulk_create(
            [OrmQ(key=broker.list_key, payload=package.signed, lock=now) for package in packages])
    else:
        payloads = [package.signed for package in packages]
        transaction.on_commit(lambda: broker.connection.rpush(broker.list_key, *payloads))


def purge() -> None:
    """Drop every message of Taskdeck's queue (rebuild_queue re-sends them from the runs)."""
    _broker().purge_queue()


def pending_run_ids() -> set[str]:
    """Ids of the runs whose message waits in the queue (not yet taken by a cluster)."""
    broker = _broker()
    if settings.Q_CLUSTER.get("orm"):
        payloads = OrmQ.objects.using(Conf.ORM).filter(key=broker.list_key).values_list("payload", flat=True)
    else:
        payloads = broker.connection.lrange(broker.list_key, 0, -1)
    pending = set()
    for payload in payloads:
        try:
            task = SignedPackage.loads(payload)
        except BadSignature:
            continue  # not ours to read (another secret key): leave it alone
        if task.get("func") == EXECUTE and task.get("args"):
            pending.add(str(task["args"][0]))
    return pending


class RunQueueBroker(ORM):
    """django-q2's ORM broker, taking messages by deleting them. Settings select it.

    The Run row records what must execute; a queue message only wakes a worker. So the pusher
    deletes the messages it takes, a whole batch in one statement, and acknowledging writes
    nothing, where django-q2's ORM broker writes twice per task (a lock on take, a delete on
    acknowledgement), each write waiting for SQLite's one write lock. A message lost with a
    cluster that died hard is sent again from its run (``services.rebuild_queue`` at start-up,
    ``services.redeliver_lost_runs`` from the scheduler); the claim makes any duplicate a no-op.
    """

    def dequeue(self) -> list[tuple[int, str]] | None:
        now = timezone.now()  # django-q2 stamps its rows with its own clock
        rows = list(
            self.get_connection().filter(key=self.list_key, lock__lte=now).order_by("id")
            .values_list("id", "payload")[: Conf.BULK]
        )
        if not rows:
            time.sleep(Conf.POLL)
            return None
        taken = _delete_messages([message_id for message_id, _ in rows])
        return [(message_id, payload) for message_id, payload in rows if message_id in taken]

    def acknowledge(self, task_id: int) -> None:
        return None  # deleted when taken

    def fail(self, task_id: int) -> None:
        return None


def _delete_messages(ids: list[int]) -> set[int]:
    """Delete queue rows; return the ids this call deleted (another cluster may race for them)."""
    connection = connections[Conf.ORM]
    table = connection.ops.quote_name(OrmQ._meta.db_table)
    if connection.features.can_return_columns_from_insert:  # SQLite >= 3.35 and PostgreSQL: RETURNING
        marks = ", ".join(["%s"] * len(ids))
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id IN ({marks}) RETURNING id", ids)
            return {row[0] for row in cursor.fetchall()}
    return {message_id for message_id in ids if OrmQ.objects.using(Conf.ORM).filter(pk=message_id).delete()[0]}


def on_worker_start(callback: Callable[[], None]) -> None:
    """Call ``callback`` in each worker process django-q2 starts (its post_spawn signal)."""

    def receiver(**kwargs: object) -> None:
        callback()

    post_spawn.connect(receiver, weak=False, dispatch_uid=f"taskdeck-{callback.__module__}.{callback.__qualname__}")


def hide_queue_admin(site: Any) -> None:
    """Take django-q2's own admin pages off ``site``: its schedules would fire any dotted function
    with any arguments (a staff user could define a shell command that way), and its queue and
    result lists show packages, not runs. Taskdeck's task and run pages replace them."""
    from django_q import models as queue_models

    for model in (queue_models.Schedule, queue_models.Success, queue_models.Failure, queue_models.OrmQ):
        if site.is_registered(model):
            site.unregister(model)


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
        """The pusher stops taking messages; each worker exits once its current run ends."""
        if self._cluster.stop_event is not None:
            self._cluster.stop_event.set()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the sentinel to exit; True if it did."""
        sentinel = self._cluster.sentinel
        if sentinel is None:
            return True
        sentinel.join(max(0.0, timeout))
        return not sentinel.is_alive()
