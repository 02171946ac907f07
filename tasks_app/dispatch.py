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

from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.db import transaction
from django_q.brokers import Broker, get_broker
from django_q.tasks import async_task

from tasks_app.conf import taskdeck_settings
from tasks_app.models import Run

EXECUTE = "tasks_app.runner.execute_run"


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
    broker = _broker()
    if settings.Q_CLUSTER.get("orm"):
        broker.enqueue(package.signed)
    else:
        transaction.on_commit(lambda: broker.enqueue(package.signed))


def recover_after_restart() -> int:
    """Single-machine start-up: make queue messages taken by a cluster that died deliverable now.

    The ORM broker locks a message when its pusher takes it; a cluster killed before running it
    would leave the message hidden for the whole ``retry`` window. Only call this when no other
    cluster shares the database (``serve`` does, before starting its worker).
    """
    if not settings.Q_CLUSTER.get("orm"):
        return 0
    from django.utils import timezone
    from django_q.models import OrmQ

    now = timezone.now()  # django-q2 compares its locks with its own clock, not Taskdeck's
    return OrmQ.objects.filter(lock__gt=now).update(lock=now)
