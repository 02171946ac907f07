"""tasks_app/live/streams.py: one subscribe / backlog / forward path, so SSE and the WebSocket resume alike.

First over a real `serve` (``clients.serving``): the same Last-Event-ID gives an SSE client and a
WebSocket client the same events, with the same ids and data, in the same order. Then a stream
over a relay of the test's own, on the test database: the backlog's reads and what the relay
hands over meanwhile, each event sent once.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tasks_app.live import outbox, streams
from tasks_app.live.relay import Relay
from tasks_app.models import Event, EventName, Run, RunStatus

from ..conftest import wait_until
from .clients import Live, Stream, ended, trigger
from .loops import close, on_a_thread, run_apart

Message = tuple[int, str, dict[str, Any]]


def sse_messages(stream: Stream, count: int) -> list[Message]:
    return [(message["id"], message["event"], message["data"]) for message in (stream.next() for _ in range(count))]


def frames(socket: ClientConnection, count: int) -> list[Message]:
    return [(frame["id"], frame["event"], frame["data"])
            for frame in (json.loads(socket.recv(timeout=10)) for _ in range(count))]


def frames_until(socket: ClientConnection, run_id: str) -> list[Message]:
    seen: list[Message] = []
    while not seen or not ended(run_id)({"event": seen[-1][1], "data": seen[-1][2]}):
        seen.extend(frames(socket, 1))
    return seen


def sse_until(stream: Stream, run_id: str) -> list[Message]:
    return [(message["id"], message["event"], message["data"]) for message in stream.until(ended(run_id))]


def socket(live: Live, query: str, **headers: str) -> ClientConnection:
    return connect(f"{live.ws}{query}", additional_headers={"X-API-Key": live.read_key, **headers})


def completed(database: sqlite3.Connection, *run_ids: str) -> bool:
    marks = ",".join("?" * len(run_ids))
    return database.execute(f"SELECT COUNT(*) FROM tasks_app_event WHERE name = 'task:completed' "
                            f"AND run_id IN ({marks})", [run_id.replace("-", "") for run_id in run_ids]
                            ).fetchone()[0] == len(run_ids)


def newest_id(database: sqlite3.Connection) -> int:
    return database.execute("SELECT MAX(id) FROM tasks_app_event").fetchone()[0] or 0


def test_sse_and_the_websocket_resume_alike_from_the_same_last_event_id(live):
    database = sqlite3.connect(live.database)
    first = trigger(live, "quick")
    wait_until(lambda: completed(database, first), timeout=20, what="the first run to complete")
    resume_from = database.execute("SELECT id FROM tasks_app_event WHERE run_id = ? AND name = 'task:queued'",
                                   (first.replace("-", ""),)).fetchone()[0]
    missed = [trigger(live, "quick") for _ in range(3)]
    wait_until(lambda: completed(database, *missed), timeout=20, what="the missed runs to complete")
    expected = database.execute("SELECT id, name FROM tasks_app_event WHERE task_id = 'quick' AND id > ? ORDER BY id",
                                (resume_from,)).fetchall()
    assert len(expected) >= 2 + 3 * 3  # the first run's start and end, and every event of the missed runs

    sse = Stream(live, "?task=quick", headers={"Last-Event-ID": str(resume_from)})
    with socket(live, "?task=quick", **{"Last-Event-ID": str(resume_from)}) as by_header, \
            socket(live, f"?task=quick&last_event_id={resume_from}") as by_query:
        backlogs = [sse_messages(sse, len(expected)), frames(by_header, len(expected)),
                    frames(by_query, len(expected))]
        after = trigger(live, "quick")  # and from there on, live
        lives = [sse_until(sse, after), frames_until(by_header, after), frames_until(by_query, after)]
    sse.close()

    assert [(event_id, name) for event_id, name, _ in backlogs[0]] == expected
    assert backlogs[0] == backlogs[1] == backlogs[2]
    assert [name for _, name, _ in lives[0]] == ["task:queued", "task:started", "task:completed"]
    assert lives[0] == lives[1] == lives[2] and lives[0][0][0] > expected[-1][0]


def test_a_run_filter_resumed_from_zero_replays_that_run_alike(live):
    database = sqlite3.connect(live.database)
    run_id = trigger(live, "quick")
    wait_until(lambda: completed(database, run_id), timeout=20, what="the run to complete")
    trigger(live, "counting", parameters={"count": 5})  # another task's events, written meanwhile

    sse = Stream(live, f"?run={run_id}", headers={"Last-Event-ID": "0"})
    with socket(live, f"?run={run_id}&last_event_id=0") as by_query:
        replayed = [sse_messages(sse, 3), frames(by_query, 3)]
    sse.close()
    assert [name for _, name, _ in replayed[0]] == ["task:queued", "task:started", "task:completed"]
    assert {data["run_id"] for _, _, data in replayed[0]} == {run_id}
    assert replayed[0] == replayed[1]


def test_a_last_event_id_past_the_newest_resumes_from_the_newest_on_both(live):
    database = sqlite3.connect(live.database)
    newest = newest_id(database)
    far = str(newest + 1_000_000)
    sse = Stream(live, "?task=quick", headers={"Last-Event-ID": far})
    with socket(live, f"?task=quick&last_event_id={far}") as by_query:
        run_id = trigger(live, "quick")
        seen = [sse_until(sse, run_id), frames_until(by_query, run_id)]
    sse.close()
    assert seen[0] == seen[1]
    assert seen[0][0][1] == "task:queued" and seen[0][0][0] > newest


def test_the_last_event_id_header_wins_over_the_query_on_both(live):
    database = sqlite3.connect(live.database)
    newest = str(newest_id(database))
    sse = Stream(live, "?task=quick&last_event_id=0", headers={"Last-Event-ID": newest})
    with socket(live, "?task=quick&last_event_id=0", **{"Last-Event-ID": newest}) as by_header:
        run_id = trigger(live, "quick")
        seen = [sse_until(sse, run_id), frames_until(by_header, run_id)]  # not every event since 0
    sse.close()
    assert seen[0] == seen[1] and [name for _, name, _ in seen[0]] == ["task:queued", "task:started", "task:completed"]


NOT_EVENT_IDS = ["x", "-1", "+1", "1.5", "1e3", "9" * 20, str(2**63)]


@pytest.mark.parametrize("value", NOT_EVENT_IDS)
def test_a_last_event_id_that_is_not_an_id_is_refused_by_both(live, value):
    sse = requests.get(f"{live.base}/api/events", headers={"X-API-Key": live.read_key, "Last-Event-ID": value},
                       timeout=10)
    assert sse.status_code == 400 and sse.json()["errors"][0]["location"] == "header.Last-Event-ID"
    for query, headers in ((f"?last_event_id={quote(value)}", {}), ("", {"Last-Event-ID": value})):
        with socket(live, query, **headers) as refused, pytest.raises(ConnectionClosed) as closed:
            refused.recv(timeout=10)
        assert closed.value.rcvd.code == 4400, (query, headers)


def test_the_caller_is_checked_before_the_last_event_id_on_both(live):
    sse = requests.get(f"{live.base}/api/events", headers={"Last-Event-ID": "x"}, timeout=10)
    assert sse.status_code == 401
    with connect(f"{live.ws}?last_event_id=x") as refused, pytest.raises(ConnectionClosed) as closed:
        refused.recv(timeout=10)
    assert closed.value.rcvd.code == 4401


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


@pytest.mark.postgres
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
