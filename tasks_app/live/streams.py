"""One way for a live client to follow the outbox, shared by SSE and the WebSocket, so both resume alike.

``api/views.py`` (SSE) and ``consumers.py`` (WebSocket) only parse a request and format what a
``Stream`` gives them: SSE writes ``id:``/``event:``/``data:`` messages and a comment when quiet,
the WebSocket one JSON text frame per event and nothing when quiet.

A stream is subscribed to this process's relay first, before it reads anything, so no event
committed meanwhile passes it by. A client that resumes (``Last-Event-ID``, or ``last_event_id``
in the query) then gets every retained event after that id, oldest first and filtered as it
asked, in reads of at most 1000; the relay's events that came in the meantime wait in its
subscription, and those the backlog already sent are dropped there, unless late
(``Subscription.skip_through``). Then live batches follow, as the relay hands them over.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

from tasks_app.live.relay import LiveEvent, Relay, Subscription, events_after, latest_event_id, this_process

#: A Last-Event-ID: ASCII digits only (str.isdigit would let "²" through to int()).
EVENT_ID = re.compile(r"[0-9]{1,19}")
#: The largest id an event can have (the outbox's primary key is a signed 64-bit integer).
MAX_EVENT_ID = 2**63 - 1


def parse_event_id(text: str) -> int:
    """A client's Last-Event-ID as an event id; ValueError when it is not one."""
    if not EVENT_ID.fullmatch(text) or int(text) > MAX_EVENT_ID:
        raise ValueError(f"not an event id: {text[:100]!r}")
    return int(text)


class Stream:
    """One live client's events: open it (subscribed), read ``batches``, close it when the client goes."""

    def __init__(self, *, task_id: str | None = None, run_id: str | None = None,
                 resume_after: int | None = None, relay: Relay | None = None) -> None:
        self.subscription = Subscription(task_id=task_id, run_id=run_id)
        self.resume_after = resume_after
        """The last event id the client has (None: it starts from now)."""
        self.relay = this_process if relay is None else relay
        """This web process's relay, or a test's own."""

    async def open(self) -> None:
        """Subscribed before the backlog is read (and before a WebSocket is accepted): once the
        client is connected, it misses nothing."""
        await self.relay.subscribe(self.subscription)

    def close(self) -> None:
        self.relay.unsubscribe(self.subscription)

    def follow(self, *, task_id: str | None, run_id: str | None) -> None:
        """Another filter (a WebSocket's subscribe message): it applies to what is sent from now."""
        self.subscription.task_id = task_id
        self.subscription.run_id = run_id

    async def batches(self, *, quiet_after: float) -> AsyncIterator[list[LiveEvent]]:
        """The backlog when resuming, then live batches: an empty one after ``quiet_after``
        seconds without events (time for a keep-alive). Endless: the client leaving ends it."""
        subscription = self.subscription
        if self.resume_after is not None:
            # An id past the newest (a database that was reset, a client's mistake) resumes from
            # the newest: skipping through it would silence every event until ids caught up.
            subscription.skip_through = min(self.resume_after, await self.relay.read(latest_event_id))
            while backlog := await self.relay.read(events_after, subscription.skip_through, public=True,
                                                   task_id=subscription.task_id, run_id=subscription.run_id):
                yield backlog
                subscription.skip_through = backlog[-1].id
        while True:
            yield await subscription.next_batch(timeout=quiet_after)


@contextlib.asynccontextmanager
async def opened(*, task_id: str | None = None, run_id: str | None = None,
                 resume_after: int | None = None, relay: Relay | None = None) -> AsyncIterator[Stream]:
    """A ``Stream``, open inside the block and closed when it is left (the client went)."""
    stream = Stream(task_id=task_id, run_id=run_id, resume_after=resume_after, relay=relay)
    await stream.open()
    try:
        yield stream
    finally:
        stream.close()
