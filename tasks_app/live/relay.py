"""Each web process's relay: the outbox's new rows, read once and handed to every live client.

Workers and the scheduler write events (``outbox.py``) in other processes; the outbox is how
they reach each web process. ``Relay`` reads new rows for all of this process's clients and
offers each to every ``Subscription``: one per SSE or WebSocket client (``streams.py``),
holding what it has not been sent yet. With REDIS_URL the relay reads when an announcement says there is something
new (``announce.py``), and otherwise polls.
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections import deque
from collections.abc import Collection, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from django.db import close_old_connections
from django.db.models import QuerySet

from tasks_app import clock
from tasks_app.conf import taskdeck_settings
from tasks_app.live import announce
from tasks_app.models import INTERNAL_EVENTS, Event, EventName

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveEvent:
    """An outbox row as clients receive it: the same id on SSE (``id:``) and WebSocket."""

    id: int
    name: str
    task_id: str
    run_id: str | None
    data: dict[str, Any]
    late: bool = False
    """Committed after a newer event was relayed (Relay.fetch): older than ids already sent."""

    def as_frame(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.name, "data": self.data}

    def as_sse(self) -> str:
        return f"id: {self.id}\nevent: {self.name}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n"


def events_after(last_id: int, *, task_id: str | None = None, run_id: str | None = None,
                 limit: int = 1000, public: bool = False) -> list[LiveEvent]:
    """Retained events newer than ``last_id``, oldest first (a resuming client's backlog; only
    those the public streams send when ``public``)."""
    rows = Event.objects.filter(id__gt=last_id).order_by("id")
    if public:
        rows = rows.exclude(name__in=sorted(INTERNAL_EVENTS))
    if task_id:
        rows = rows.filter(task_id=task_id)
    if run_id:
        rows = rows.filter(run_id=run_id)
    return _live(rows[:limit])


def events_with_ids(ids: Collection[int]) -> list[LiveEvent]:
    return _live(Event.objects.filter(id__in=sorted(ids)).order_by("id"))


def _live(rows: QuerySet[Event]) -> list[LiveEvent]:
    return [
        LiveEvent(id=row_id, name=name, task_id=row_task, run_id=str(row_run) if row_run else None, data=data)
        for row_id, name, row_task, row_run, data in rows.values_list("id", "name", "task_id", "run_id", "data")
    ]


def latest_event_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


class Subscription:
    """One live client's filter and its queue of events not yet sent: the events named in
    ``names``, or when None every event the public streams send (not ``INTERNAL_EVENTS``).

    Progress is coalesced per run: a progress event replaces the one still waiting for the same
    run, so a fast loop cannot flood a client, and the newest (last) progress is always the one
    delivered. A client that falls more than ``MAX_PENDING`` events behind loses its oldest.
    """

    MAX_PENDING = 2000

    def __init__(self, *, task_id: str | None = None, run_id: str | None = None,
                 names: Set[str] | None = None) -> None:
        self.task_id = task_id
        self.run_id = run_id
        self.names = names
        self.pending: deque[LiveEvent] = deque()
        self.waiting_progress: dict[str, LiveEvent] = {}
        self.ready = asyncio.Event()
        self.skip_through = 0
        """Events up to this id were already sent from the backlog (resume). A late event below
        it is sent anyway: it may have committed after the backlog was read, and a client given
        an event twice (same id) loses less than one never given it."""

    def wants(self, event: LiveEvent) -> bool:
        named = event.name not in INTERNAL_EVENTS if self.names is None else event.name in self.names
        return (named and (self.task_id is None or event.task_id == self.task_id)
                and (self.run_id is None or event.run_id == self.run_id) and self.unsent(event))

    def unsent(self, event: LiveEvent) -> bool:
        return event.id > self.skip_through or event.late

    def offer(self, event: LiveEvent) -> None:
        if not self.wants(event):
            return
        if event.name == EventName.PROGRESS and event.run_id in self.waiting_progress:
            stale = self.waiting_progress[event.run_id]
            self.pending[self.pending.index(stale)] = event
        else:
            self.pending.append(event)
            if len(self.pending) > self.MAX_PENDING:
                dropped = self.pending.popleft()
                if dropped.run_id and self.waiting_progress.get(dropped.run_id) is dropped:
                    del self.waiting_progress[dropped.run_id]
        if event.name == EventName.PROGRESS and event.run_id:
            self.waiting_progress[event.run_id] = event
        self.ready.set()

    async def next_batch(self, *, timeout: float) -> list[LiveEvent]:
        """The events waiting (maybe none, after ``timeout`` seconds: time for a keep-alive)."""
        if not self.pending:
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except TimeoutError:
                return []
        batch = [event for event in self.pending if self.unsent(event)]
        self.pending.clear()
        self.waiting_progress.clear()
        return batch


class Relay:
    """Reads new outbox rows for every live client of this web process, in one query a poll.

    Workers and the scheduler write events in other processes; the outbox is how they reach each
    web process. The relay runs on the server's event loop only while someone listens, reading
    through one thread of its own (one database connection), so 500 clients cost one query every
    ``POLL_INTERVAL`` seconds, not 500. With announcements (REDIS_URL) it reads when one says
    there is something new, and otherwise only every ``EVENT_FALLBACK_POLL`` seconds.

    Ids are handed out when a row is inserted, not when it commits: on PostgreSQL a transaction
    holding id 41 can commit after one holding 42 was read. An id skipped by a read is watched
    for ``HOLE_WAIT`` seconds and relayed if it appears (a rolled-back id never does). SQLite
    serialises writers, so there ids always commit in order.
    """

    POLL_INTERVAL = 0.1
    HOLE_WAIT = 5.0
    #: Skipped ids watched at most (a sequence jump, after a crash say, is not worth watching).
    MAX_HOLES = 1000
    #: Seconds a new client waits at most for the relay to subscribe to announcements.
    SUBSCRIBE_WAIT = 1.0

    def __init__(self) -> None:
        self.subscriptions: set[Subscription] = set()
        self.last_id: int | None = None
        self.task: asyncio.Task[None] | None = None
        self.listener: announce.Listener | None = None
        self.listening: asyncio.Task[None] | None = None
        self.news = asyncio.Event()
        """Set by an announcement of events not read yet: read now."""
        self.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskdeck-relay")
        self.holes: dict[int, float] = {}
        """Ids skipped by a read, each with the monotonic time it stops being watched."""

    async def subscribe(self, subscription: Subscription) -> None:
        if self.last_id is None:
            latest = await self.read(latest_event_id)
            if self.last_id is None:  # another subscriber may have started the relay meanwhile
                self.last_id = latest
        self.subscriptions.add(subscription)
        if self.task is None or self.task.done():
            self.news = asyncio.Event()
            self.listener = announce.Listener(self.hear) if announce.enabled() else None
            # A context of its own: the relay outlives the request that happened to start it.
            self.task = asyncio.get_running_loop().create_task(self.run(), name="taskdeck-relay",
                                                               context=contextvars.Context())
        if self.listener is not None:
            # Subscribed before the client goes on: from then on no announcement passes it by.
            await self.listener.wait_tried(timeout=self.SUBSCRIBE_WAIT)

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.discard(subscription)

    def hear(self, last_id: int | None) -> None:
        """An announcement: events up to ``last_id`` are committed (None: maybe some, read anyway)."""
        if last_id is None or last_id > (self.last_id or 0):
            self.news.set()

    async def read(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            try:
                return function(*args, **kwargs)
            finally:
                close_old_connections()
        return await asyncio.get_running_loop().run_in_executor(self.reader, call)

    async def run(self) -> None:
        listening = None
        if self.listener is not None:
            listening = asyncio.get_running_loop().create_task(self.listener.run(after=self.listening),
                                                               name="taskdeck-relay-listener")
            self.listening = listening
        try:
            while self.subscriptions:
                self.news.clear()
                try:
                    fresh = await self.read(self.fetch)
                except Exception:  # the database may be briefly away; clients keep their streams
                    logger.exception("Reading live events failed; retrying.")
                    fresh = []
                for event in fresh:
                    for subscription in list(self.subscriptions):
                        subscription.offer(event)
                if len(fresh) < 1000:
                    await self.pause()
        finally:
            if listening is not None:
                listening.cancel()
        self.last_id = None  # nobody listens: the next client starts from the newest event
        self.holes.clear()

    def fetch(self) -> list[LiveEvent]:
        """Events committed since the last read: those that filled a watched hole, then the new ones."""
        last = self.last_id or 0
        late = [replace(event, late=True) for event in events_with_ids(self.holes)] if self.holes else []
        fresh = events_after(last)
        now = clock.monotonic()
        for event in late:
            del self.holes[event.id]
        self.holes = {hole: until for hole, until in self.holes.items() if until > now}
        expected = last + 1
        for event in fresh:
            for hole in range(max(expected, event.id - self.MAX_HOLES), event.id):
                self.holes[hole] = now + self.HOLE_WAIT
            expected = event.id + 1
        if len(self.holes) > self.MAX_HOLES:
            self.holes = dict(sorted(self.holes.items())[-self.MAX_HOLES:])
        if fresh:
            self.last_id = fresh[-1].id
        return late + fresh

    async def pause(self) -> None:
        """Until the next read: POLL_INTERVAL; with announcements, until one comes (or the
        fallback poll's time, in case one was lost)."""
        if self.listener is None:
            await asyncio.sleep(self.POLL_INTERVAL)
        elif not self.news.is_set():  # unless one came during the read
            try:
                async with asyncio.timeout(taskdeck_settings.EVENT_FALLBACK_POLL):
                    await self.news.wait()
            except TimeoutError:
                pass


#: This web process's relay (an asyncio object: it lives on the server's event loop).
this_process = Relay()
