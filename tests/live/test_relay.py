"""tasks_app/live/relay.py: the relay's reads of the outbox and a subscription's queue (the streams
themselves: tests/live/test_streams.py, and over a real serve tests/api/test_events.py and
tests/live/test_consumers.py)."""
from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from tasks_app import clock
from tasks_app.live import outbox
from tasks_app.live.relay import LiveEvent, Relay, Subscription, events_after, latest_event_id
from tasks_app.models import Event, EventName

from ..factories import make_task

FAR = 10**9  # ids no sequence reaches during the suite


def write_event(event_id: int, message: str) -> None:
    Event.objects.create(id=event_id, name=EventName.UPDATED, task_id="t", data={"message": message},
                         created_at=clock.now())


@pytest.mark.django_db
def test_an_id_a_read_skipped_is_relayed_when_it_commits_later(monkeypatch):
    relay = Relay()
    relay.last_id = FAR
    write_event(FAR + 2, "newer, committed first")
    assert [event.id for event in relay.fetch()] == [FAR + 2]
    assert set(relay.holes) == {FAR + 1}

    write_event(FAR + 1, "older, committed late")
    write_event(FAR + 3, "next")
    assert [event.id for event in relay.fetch()] == [FAR + 1, FAR + 3]
    assert relay.holes == {} and relay.fetch() == []


@pytest.mark.django_db
def test_a_hole_that_never_fills_is_forgotten_after_the_wait(clock):
    relay = Relay()
    relay.last_id = FAR
    write_event(FAR + 3, "after two rolled-back ids")
    relay.fetch()
    assert set(relay.holes) == {FAR + 1, FAR + 2}
    clock.advance(seconds=relay.HOLE_WAIT + 0.1)
    relay.fetch()
    assert relay.holes == {}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_event_that_commits_after_a_newer_one_still_reaches_clients_once():
    """PostgreSQL: the newer event is read first, the older one when it commits. SQLite: the
    second writer waits for the first, so both are read in order. Either way, each exactly once."""
    task = make_task()
    relay = Relay()
    relay.last_id = latest_event_id()
    holding, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with transaction.atomic():
            outbox.emit_task_updated(task, message="slow")  # takes its id now, commits later
            holding.set()
            release.wait(10)
        connection.close()

    def fast_writer() -> None:
        outbox.emit_task_updated(task, message="fast")
        connection.close()

    slow = threading.Thread(target=slow_writer)
    slow.start()
    assert holding.wait(10)
    fast = threading.Thread(target=fast_writer)
    fast.start()
    fast.join(1 if connection.vendor == "sqlite" else 10)
    assert fast.is_alive() == (connection.vendor == "sqlite")  # SQLite holds the second writer back
    first = relay.fetch()
    release.set()
    slow.join(10)
    fast.join(10)
    second = relay.fetch()

    if connection.vendor == "postgresql":
        assert [event.data["message"] for event in first] == ["fast"]
        assert [event.data["message"] for event in second] == ["slow"] and second[0].id < first[0].id
    else:
        assert first == [] and [event.data["message"] for event in second] == ["slow", "fast"]
    assert relay.fetch() == []


def test_a_resumed_client_gets_a_late_event_below_its_backlog_but_not_an_old_one_again():
    subscription = Subscription()
    subscription.skip_through = FAR + 10  # the backlog went this far
    for event in (LiveEvent(FAR + 5, EventName.UPDATED, "t", None, {}),  # relayed, was in the backlog
                  LiveEvent(FAR + 6, EventName.UPDATED, "t", None, {}, late=True),  # committed after it
                  LiveEvent(FAR + 11, EventName.UPDATED, "t", None, {})):
        subscription.offer(event)
    assert [event.id for event in subscription.pending] == [FAR + 6, FAR + 11]


@pytest.mark.django_db
def test_events_read_from_a_hole_are_marked_late():
    relay = Relay()
    relay.last_id = FAR
    write_event(FAR + 2, "newer")
    assert [event.late for event in relay.fetch()] == [False]
    write_event(FAR + 1, "older")
    assert [(event.id, event.late) for event in relay.fetch()] == [(FAR + 1, True)]


@pytest.mark.django_db
def test_log_events_wake_log_streams_only_never_the_public_streams():
    run = make_task(id="talker").runs.create(trigger="manual", created_at=clock.now())
    outbox.emit_log_written(run_id=run.id, task_id="talker", size=42)
    outbox.emit_run_event(EventName.PROGRESS, run, message="half")
    log, progress = Relay().fetch()[-2:]  # the relay reads every event, for every kind of client
    assert (log.name, log.data["size"], progress.name) == (EventName.LOG, 42, EventName.PROGRESS)
    public, log_stream = Subscription(run_id=str(run.id)), Subscription(run_id=str(run.id), names={EventName.LOG})
    for subscription in (public, log_stream):
        subscription.offer(log)
        subscription.offer(progress)
    assert list(public.pending) == [progress] and list(log_stream.pending) == [log]
    backlog = events_after(log.id - 1, run_id=str(run.id), public=True)
    assert [event.name for event in backlog] == [EventName.PROGRESS]  # a resuming SSE or WebSocket client
