"""Hands runs to django-q2. The only module that imports django_q.

With the ORM broker (the default) the queue row is written in the same transaction as the run's
admission, so a worker can see it only once the run is committed, and a crash can never commit
one without the other. With the Redis broker the message is sent on commit. Either way a second
delivery is harmless: the worker's claim (queued -> running) lets only one execution through.
"""
from __future__ import annotations

from functools import cache

from django.conf import settings
from django.db import transaction
from django_q.brokers import Broker, get_broker
from django_q.tasks import async_task

from tasks_app.conf import taskdeck_settings
from tasks_app.models import Run

EXECUTE = "tasks_app.runner.execute_run"


@cache
def _broker() -> Broker:
    """One broker per process: async_task would otherwise build a new one per call."""
    return get_broker()


def enqueue(run: Run) -> None:
    """Queue ``run`` for a worker. Call inside the transaction that admits the run."""
    options = {
        "task_name": f"{run.task_id}:{run.id}",
        "broker": _broker(),
        "save": False,
        "ack_failure": True,
    }
    if run.task.timeout:
        # django-q2's guard is only a backstop: the run's own watchdog ends it first.
        options["timeout"] = int(run.task.timeout + taskdeck_settings.CANCEL_GRACE + 30)
    if settings.Q_CLUSTER.get("orm"):
        async_task(EXECUTE, str(run.id), **options)
    else:
        transaction.on_commit(lambda: async_task(EXECUTE, str(run.id), **options))



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
