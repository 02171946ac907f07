"""tasks_app/events.py: the relay's reads of the outbox (the streams themselves: tests/api/test_events.py)."""
from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from tasks_app import clock, events
from tasks_app.models import Event, EventName

from .factories import make_task

FAR = 10**9  # ids no sequence reaches during the suite


def write_event(event_id: int, message: str) -> None:
    Event.objects.create(id=event_id, name=EventName.UPDATED, task_id="t", data={"message": message},
                         created_at=clock.now())


@pytest.mark.django_db
def test_an_id_a_read_skipped_is_relayed_when_it_commits_later(monkeypatch):
    relay = events.Relay()
    relay.last_id = FAR
    write_event(FAR + 2, "newer, committed first")
    assert [event.id for event in relay.fetch()] == [FAR + 2]
    assert set(relay.holes) == {FAR + 1}

    write_event(FAR + 1, "older, committed late")
    write_event(FAR + 3, "next")
    assert [event.id for event in relay.fetch()] == [FAR + 1, FAR + 3]
    assert relay.holes == {} and relay.fetch() == []


@pytest.mark.django_db
def test_a_hole_that_never_fills_is_forgotten_after_the_wait(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(events.time, "monotonic", lambda: now[0])
    relay = events.Relay()
    relay.last_id = FAR
    write_event(FAR + 3, "after two rolled-back ids")
    relay.fetch()
    assert set(relay.holes) == {FAR + 1, FAR + 2}
    now[0] += relay.HOLE_WAIT + 0.1
    relay.fetch()
    assert relay.holes == {}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_an_event_committed_after_a_newer_one_was_read_still_reaches_clients():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: a second write waits for the first to commit")
    task = make_task()
    relay = events.Relay()
    relay.last_id = events.latest_event_id()
    holding, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with transaction.atomic():
            events.emit_task_updated(task, message="slow")  # takes its id now, commits later
            holding.set()
            release.wait(10)
        connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert holding.wait(10)
    events.emit_task_updated(task, message="fast")
    first = relay.fetch()
    release.set()
    writer.join(10)
    second = relay.fetch()

    assert [event.data["message"] for event in first] == ["fast"]
    assert [event.data["message"] for event in second] == ["slow"] and second[0].id < first[0].id
