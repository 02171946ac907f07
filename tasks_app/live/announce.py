"""Announcements: "the outbox has new events, up to id N", sent through Redis when REDIS_URL is set.

The outbox (``outbox.py``) stays the record: ids, order, resuming and filters all come from the
Event table. An announcement only wakes each web process's relay (``relay.py``), so that it reads
the outbox at once instead of at its next poll. Losing one (Redis away, a relay still
subscribing) costs time, never an event: with announcements the relay still reads every
``EVENT_FALLBACK_POLL`` seconds.

* Writers (workers, the scheduler, web requests) call ``after_commit()`` when they insert event
  rows. Once the transaction commits, one announcement per transaction goes out, sent by a
  thread of the process's own (``publisher``): a writer never waits on Redis, nor fails with it.
* A web process's relay runs a ``Listener`` on the server's event loop while it has clients.

They meet on the ``live-events`` channel layer (config/settings.py, only with REDIS_URL); without
it nothing here runs, and the relay polls the outbox every 0.1 s as it always did. Channels is
imported only once a layer is in use.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from tasks_app.conf import taskdeck_settings
from tasks_app.models import Event

logger = logging.getLogger(__name__)

#: The channel layer alias (CHANNEL_LAYERS in config/settings.py). Not "default": Channels gives
#: every consumer of the default layer a Redis channel of its own, and ours need none.
LAYER = "live-events"
#: The group every relay listens to.
GROUP = "live-events"
#: Seconds one send may take before it is given up, so a stalled Redis cannot hold up the next.
SEND_TIMEOUT = 2.0
#: Seconds between attempts to subscribe while Redis is away.
RETRY_AFTER = 1.0


def enabled() -> bool:
    """Whether announcements are configured (REDIS_URL). Read per call, so tests can switch."""
    return LAYER in getattr(settings, "CHANNEL_LAYERS", {})


def _layer() -> Any:
    from channels.layers import get_channel_layer

    return get_channel_layer(LAYER)


def _is_outage(error: BaseException) -> bool:
    """Whether ``error`` is Redis being away (refused, reset, unresolvable, stalled), not a bug."""
    from redis.exceptions import RedisError  # imported once in use: 50 ms off every start-up

    return isinstance(error, RedisError | OSError | TimeoutError)


class _Outage:
    """Logs once when Redis stops answering and once when it answers again, not per attempt."""

    def __init__(self, failing: str, meanwhile: str, again: str) -> None:
        self.failing, self.meanwhile, self.again = failing, meanwhile, again
        self.on = False

    def failed(self, error: Exception) -> None:
        if not _is_outage(error):  # a bug, not Redis being away: show where
            logger.error("%s (%s: %s).", self.failing, type(error).__name__, error, exc_info=error)
        elif not self.on:
            logger.warning("%s (%s: %s); %s every %s s meanwhile.", self.failing, type(error).__name__, error,
                           self.meanwhile, taskdeck_settings.EVENT_FALLBACK_POLL)
        self.on = True

    def passed(self) -> None:
        if self.on:
            logger.info(self.again)
        self.on = False


# --- Writers --------------------------------------------------------------------------------------

#: Per thread, as database connections are: event rows were inserted and not yet announced.
_unannounced = threading.local()


def after_commit() -> None:
    """Announce the new rows once the current transaction commits (at once outside one).

    Called for each batch of rows inserted. A transaction that inserts several batches still
    announces once: its first callback announces, the later ones find nothing due. A rolled-back
    transaction's callbacks never run, so it announces nothing. ``robust``: whatever goes wrong
    here is logged; the writer's commit stands and it carries on.
    """
    _unannounced.due = True
    transaction.on_commit(_announce_due, robust=True)


def _announce_due() -> None:
    if not getattr(_unannounced, "due", False):
        return
    _unannounced.due = False
    # Read after the commit: it covers this transaction's rows, and holds no write lock.
    newest = Event.objects.aggregate(newest=Max("id"))["newest"]
    if newest is not None:
        publisher.announce(newest)


class Publisher:
    """Sends announcements from a thread of its own, on an event loop of its own.

    ``announce`` only hands a number over to that loop. Announcements made faster than they can
    be sent merge into one carrying the newest id. The thread starts on first use in each process
    (a worker forked from a process that had announced starts its own).
    """

    def __init__(self) -> None:
        self.start_afresh()

    def start_afresh(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = asyncio.Event()
        self._newest = 0
        self._outage = _Outage("Could not announce new live events", "web processes read them",
                               "Announcing new live events again.")

    def announce(self, last_id: int) -> None:
        self._running_loop().call_soon_threadsafe(self._note, last_id)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_until_complete, args=(self._send_forever(),),
                                 name="taskdeck-announcer", daemon=True).start()
            return self._loop

    def _note(self, last_id: int) -> None:
        self._newest = max(self._newest, last_id)
        self._due.set()

    async def _send_forever(self) -> None:
        while True:
            await self._due.wait()
            self._due.clear()
            layer = _layer()
            if layer is None:  # settings changed since (tests)
                continue
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await layer.group_send(GROUP, {"type": "events.new", "last_id": self._newest})
            except Exception as error:  # Redis away, or a bug: logged, and this thread lives on
                self._outage.failed(error)
            else:
                self._outage.passed()


#: This process's publisher. A forked child has the object but not the thread: it starts its own.
publisher = Publisher()
os.register_at_fork(after_in_child=publisher.start_afresh)


# --- Web processes --------------------------------------------------------------------------------


class Listener:
    """Hears announcements for a relay, on the web server's event loop, until cancelled.

    ``on_news(last_id)`` is called for each announcement, and with None each time the listener
    has subscribed: what was announced before then went unheard. While Redis is away it logs
    once and tries again every ``RETRY_AFTER`` seconds; the relay's fallback poll delivers
    meanwhile. Once subscribed, Redis going away and coming back is channels-redis's business
    (redis-py subscribes again when it reconnects).
    """

    def __init__(self, on_news: Callable[[int | None], None]) -> None:
        self.on_news = on_news
        self.tried = asyncio.Event()
        """Set once the first attempt to subscribe is over, whether it worked or not."""
        self._outage = _Outage("Not hearing live-event announcements", "reading the outbox",
                               "Hearing live-event announcements again.")

    async def run(self, *, after: asyncio.Task[None] | None = None) -> None:
        """``after``: the listener this one replaces on the same loop (cancelled), which must
        let go of the layer before this one subscribes: they share its per-loop state."""
        if after is not None:
            await asyncio.wait({after})
        layer = _layer()
        try:
            while layer is not None:
                try:
                    channel = await layer.new_channel()
                    await layer.group_add(GROUP, channel)
                except Exception as error:  # Redis away, or a bug: logged; try again later
                    self._outage.failed(error)
                    self.tried.set()
                    await self._reset(layer)
                    await asyncio.sleep(RETRY_AFTER)
                    continue
                self._outage.passed()
                self.tried.set()
                self.on_news(None)
                while True:
                    message = await layer.receive(channel)
                    self.on_news(int(message["last_id"]))
        finally:
            self.tried.set()
            if layer is not None:
                await self._reset(layer)

    async def wait_tried(self, *, timeout: float) -> None:
        """Until the first attempt to subscribe is over: at most ``timeout`` seconds, so a client
        never waits long on Redis."""
        try:
            async with asyncio.timeout(timeout):
                await self.tried.wait()
        except TimeoutError:
            pass

    @staticmethod
    async def _reset(layer: Any) -> None:
        """Drop this loop's subscriptions and Redis connection (``flush`` of the pub/sub layer)."""
        try:
            await layer.flush()
        except Exception as error:  # most likely closing a connection to a Redis that is gone
            logger.log(logging.DEBUG if _is_outage(error) else logging.ERROR,
                       "Closing the announcement connection failed", exc_info=True)
