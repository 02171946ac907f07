"""The hand-off of runs to django-q2: the only package that imports django_q.

- ``handoff``: prepare a run's package before the transaction, enqueue it inside; what waits;
- ``brokers``: where packages go (the ORM queue, a Redis list, or a fake for tests) behind one
  small interface, and the ORM broker django-q2's pusher takes messages with;
- ``cluster``: django-q2's worker cluster, forked and stopped by ``workers.Worker``;
- ``hooks``: django-q2's signals and admin pages, as Taskdeck wants them.

Callers write ``queue.prepare(run)`` and ``queue.enqueue_many(packages)``.
"""
from tasks_app.queue.handoff import (
    EXECUTE,
    Package,
    enqueue,
    enqueue_many,
    pending_run_ids,
    prepare,
    purge,
    using_broker,
)

__all__ = ["EXECUTE", "Package", "enqueue", "enqueue_many", "pending_run_ids", "prepare", "purge", "using_broker"]
