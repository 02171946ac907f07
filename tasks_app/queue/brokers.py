"""Where a run's package goes, behind one small interface (``RunBroker``):

- ``OrmRunBroker`` (the default): a row of django-q2's ORM queue, written in the transaction that
  admits the run, so a worker can see it only once the run is committed and a crash never commits
  one without the other;
- ``RedisRunBroker`` (``REDIS_URL`` set): pushed to django-q2's Redis list once the run commits;
- ``FakeRunBroker``: a list in memory, filled on commit like Redis, for tests that check what is
  handed over without a cluster to take it.

``RunQueueBroker`` is the other side: the ORM broker django-q2's pusher takes messages with.
"""
from __future__ import annotations

import time
from typing import Protocol

from django.db import transaction
from django.utils import timezone
from django_q.brokers import Broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

from tasks_app.db.deletes import delete_returning_ids


class RunBroker(Protocol):
    """What the hand-off needs of a queue."""

    list_key: str

    def send(self, payloads: list[str]) -> None:
        """Queue signed packages; called inside the transaction that admits their runs."""

    def waiting(self) -> list[str]:
        """The signed packages still waiting, not yet taken by a cluster."""

    def purge(self) -> None:
        """Drop every waiting package (the runs stay; ``rebuild_queue`` sends them again)."""


class OrmRunBroker:
    """django-q2's ORM queue: one bulk insert in the caller's transaction."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self.list_key = broker.list_key

    def send(self, payloads: list[str]) -> None:
        now = timezone.now()  # django-q2 stamps its rows with its own clock
        OrmQ.objects.using(Conf.ORM).bulk_create([OrmQ(key=self.list_key, payload=payload, lock=now)
                                                  for payload in payloads])

    def waiting(self) -> list[str]:
        return list(OrmQ.objects.using(Conf.ORM).filter(key=self.list_key).values_list("payload", flat=True))

    def purge(self) -> None:
        self._broker.purge_queue()


class RedisRunBroker:
    """django-q2's Redis list: one push once the admitting transaction commits."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self.list_key = broker.list_key

    def send(self, payloads: list[str]) -> None:
        connection, key = self._broker.connection, self.list_key
        transaction.on_commit(lambda: connection.rpush(key, *payloads))

    def waiting(self) -> list[str]:
        return self._broker.connection.lrange(self.list_key, 0, -1)

    def purge(self) -> None:
        self._broker.purge_queue()


class FakeRunBroker:
    """A queue in memory: packages land in ``sent`` when their transaction commits, as with Redis,
    so a test sees exactly what a committed trigger handed over and nothing a rollback undid."""

    list_key = "fake"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, payloads: list[str]) -> None:
        transaction.on_commit(lambda: self.sent.extend(payloads))

    def waiting(self) -> list[str]:
        return list(self.sent)

    def purge(self) -> None:
        self.sent.clear()


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
        taken = delete_returning_ids(OrmQ, [message_id for message_id, _ in rows], using=Conf.ORM)
        return [(message_id, payload) for message_id, payload in rows if message_id in taken]

    def acknowledge(self, task_id: int) -> None:
        return None  # deleted when taken

    def fail(self, task_id: int) -> None:
        return None
