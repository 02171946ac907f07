"""Handing runs to django-q2, in two halves so the caller's write transaction stays short:

* ``prepare(run)``, before the transaction: django-q2 builds and signs its task package;
* ``enqueue(package)``, inside the transaction that admits the run (brokers.py says when each
  broker's message becomes visible).

Either way a second delivery is harmless: the worker's claim (queued -> running) lets only one
execution through.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.signing import BadSignature
from django_q.brokers import get_broker
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from tasks_app.conf import taskdeck_settings
from tasks_app.models import Run
from tasks_app.queue.brokers import OrmRunBroker, RedisRunBroker, RunBroker

#: The function a worker calls with a run's id (and its task's id).
EXECUTE = "tasks_app.execution.entry.execute_run"


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
def _configured_broker() -> RunBroker:
    """One broker per process, as settings choose it: async_task would otherwise build one per call."""
    broker = get_broker()
    return OrmRunBroker(broker) if settings.Q_CLUSTER.get("orm") else RedisRunBroker(broker)


_override: list[RunBroker] = []


def broker() -> RunBroker:
    """The broker runs go to: the configured one, or the one a test put in place."""
    return _override[-1] if _override else _configured_broker()


@contextlib.contextmanager
def using_broker(replacement: RunBroker) -> Iterator[RunBroker]:
    """Send runs to ``replacement`` (a ``FakeRunBroker`` in tests) inside this block."""
    _override.append(replacement)
    try:
        yield replacement
    finally:
        _override.remove(replacement)


def prepare(run: Run) -> Package:
    """Build the package that makes a worker execute ``run`` (no database access)."""
    options = {"task_name": f"{run.task_id}:{run.id}", "save": False, "ack_failure": True}
    if run.task.timeout:
        # django-q2's guard is only a backstop: the run's own watchdog ends it first.
        options["timeout"] = int(run.task.timeout + taskdeck_settings.CANCEL_GRACE + 30)
    catcher = _PackageCatcher(broker().list_key)
    async_task(EXECUTE, str(run.id), run.task_id, broker=catcher, **options)
    return Package(catcher.signed)


def enqueue(package: Package) -> None:
    """Queue a prepared package. Call inside the transaction that admits the run."""
    enqueue_many([package])


def enqueue_many(packages: list[Package]) -> None:
    """Queue prepared packages, inside the transaction that admits their runs."""
    if packages:
        broker().send([package.signed for package in packages])


def purge() -> None:
    """Drop every message of Taskdeck's queue (rebuild_queue re-sends them from the runs)."""
    broker().purge()


def pending_run_ids() -> set[str]:
    """Ids of the runs whose message waits in the queue (not yet taken by a cluster)."""
    pending = set()
    for payload in broker().waiting():
        try:
            task = SignedPackage.loads(payload)
        except BadSignature:
            continue  # not ours to read (another secret key): leave it alone
        if task.get("func") == EXECUTE and task.get("args"):
            pending.add(str(task["args"][0]))
    return pending
