"""tasks_app/live/streams.py: one subscribe / backlog / forward path for SSE and the WebSocket.

A stream over a relay of the test's own, on the test database: the backlog's reads and what the
relay hands over meanwhile, each event sent once. (Over a real `serve`: tests/api/test_events.py
for SSE, tests/live/test_consumers.py for the WebSocket.)
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tasks_app.live import outbox, streams
from tasks_app.live.relay import Relay
from tasks_app.models import Event, EventName, Run, RunStatus

from .loops import close, on_a_thread, run_apart

NOT_EVENT_IDS = ["x", "-1", "+1", "1.5", "1e3", "9" * 20, str(2**63)]


@pytest.mark.parametrize(("text", "event_id"), [("0", 0), ("42", 42), ("007", 7), (str(2**63 - 1), 2**63 - 1)])
def test_an_event_id_is_ascii_digits_up_to_the_largest_key(text, event_id):
    assert streams.parse_event_id(text) == event_id


@pytest.mark.parametrize("text", ["", " 1", "²", "٣", *NOT_EVENT_IDS])
def test_anything_else_is_not_an_event_id(text):
    with pytest.raises(ValueError):
        streams.parse_event_id(text)


# --- A stream over a relay of the test's own ------------------------------------------------------


def write_events(task_id: str, count: int) -> list[int]:
    """``count`` events about a run of ``task_id``, written as the services write them; their ids."""
    run = Run(task_id=task_id, status=RunStatus.QUEUED)
    outbox.emit_run_events([(EventName.QUEUED, run, "")] * count)
    return list(Event.objects.filter(task_id=task_id).order_by("-id").values_list("id", flat=True)[:count])[::-1]


async def until(predicate: Callable[[], bool], *, timeout: float = 10, what: str = "") -> None:
    """``wait_until`` on the event loop, where the relay runs."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"Timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_a_resumed_stream_reads_its_backlog_1000_at_a_time_then_sends_each_live_event_once():
    async def scenario() -> None:
        missed = await on_a_thread(lambda: write_events("backlog", 1500))
        relay = Relay()
        async with streams.opened(task_id="backlog", resume_after=missed[0] - 1, relay=relay) as stream:
            # Subscribed: the relay hands these over too, and the backlog's second read has the first.
            meanwhile = await on_a_thread(lambda: write_events("backlog", 1))
            elsewhere = await on_a_thread(lambda: write_events("elsewhere", 1))
            await until(lambda: (relay.last_id or 0) >= elsewhere[0], what="the relay to read them")
            batches = stream.batches(quiet_after=0.5)
            first, second = await anext(batches), await anext(batches)
            assert [event.id for event in first] == missed[:1000]
            assert [event.id for event in second] == missed[1000:] + meanwhile
            assert await anext(batches) == []  # what the relay held was in the backlog: not sent again
            later = await on_a_thread(lambda: write_events("backlog", 1))
            assert [event.id for event in await anext(batches)] == later
            started = time.monotonic()
            assert await anext(batches) == [] and time.monotonic() - started >= 0.4  # quiet: a keep-alive's turn
            assert relay.subscriptions == {stream.subscription}
        assert relay.subscriptions == set()  # leaving the block let go of it
        await close(relay)

    run_apart(scenario)
