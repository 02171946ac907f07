"""A run's log as a live client follows it (``GET /api/runs/{id}/log/stream``): read from a byte
offset, woken by this process's relay.

A ``LogFollower`` subscribes to the relay for its run's ``run:log`` events (written, at most every
``ANNOUNCE_INTERVAL`` and always after the last flush, when output lands: execution/output.py)
and its end events, before its first read, so no output lands unseen. Then it reads everything
from its offset, a page at a time; once caught up it waits for one of those events, or
``quiet_after`` seconds (time for a keep-alive), and reads again either way: a lost wake-up
delays output, never loses it. So a client following a log costs a read when output lands, and
no poll of the chunk table; the events reach every web process through the relay's one query
per poll (or a Redis announcement).

It ends once the run has ended and every byte is sent: a run's status and its log's size are read
in one statement (``selectors.log_bounds``), and a run's last output lands before its end. A
run that disappears (deleted) ends the stream without an ``end``.
"""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tasks_app import selectors
from tasks_app.live.outbox import END_EVENTS
from tasks_app.live.relay import Relay, Subscription, this_process
from tasks_app.models import EventName

#: The events that may mean new output or the end of the run.
WAKE_EVENTS = frozenset({EventName.LOG, *END_EVENTS.values()})


@dataclass(frozen=True)
class LogEnd:
    """The run ended and its whole log was sent: ``size`` bytes."""

    status: str
    end_reason: str
    size: int


class LogFollower:
    """One client's place in one run's log."""

    def __init__(self, run_id: str, *, offset: int, relay: Relay | None = None) -> None:
        self.run_id = run_id
        self.offset = offset
        """The next byte to send."""
        self.relay = this_process if relay is None else relay
        self.subscription = Subscription(run_id=run_id, names=WAKE_EVENTS)

    async def items(self, *, quiet_after: float) -> AsyncIterator[selectors.LogPiece | LogEnd | None]:
        """Pieces of output as they land (None after ``quiet_after`` quiet seconds), then the end."""
        while True:
            piece = await self.relay.read(selectors.read_log, self.run_id, offset=self.offset)
            if piece is None:
                return
            if piece.data or piece.dropped:
                self.offset = piece.end
                yield piece
                continue
            if not piece.bounds.active:
                yield LogEnd(piece.bounds.status, piece.bounds.end_reason, piece.bounds.size)
                return
            if not await self.subscription.next_batch(timeout=quiet_after):
                yield None


@contextlib.asynccontextmanager
async def followed(run_id: str, *, offset: int, relay: Relay | None = None) -> AsyncIterator[LogFollower]:
    """A ``LogFollower`` subscribed inside the block, let go of when it is left (the client went)."""
    follower = LogFollower(run_id, offset=offset, relay=relay)
    await follower.relay.subscribe(follower.subscription)
    try:
        yield follower
    finally:
        follower.relay.unsubscribe(follower.subscription)
