"""Live events over a real `serve`: SSE (/api/events); the WebSocket in tests/live/test_consumers.py.

One `manage.py serve` (web, worker, scheduler) on a free loopback port with its own database,
keys made by the management command, and a non-staff user's session made in that database
(``tests/live/clients.py``).
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ..conftest import wait_until
from ..live.clients import Live, Stream, ended, serving, trigger


@pytest.fixture(scope="module")
def live(process_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serving(process_env, tmp_path_factory.mktemp("events")) as started:
        yield started


def test_a_run_streams_its_events_in_order_with_ids(live):
    stream = Stream(live, "?task=counting")
    run_id = trigger(live, "counting")
    seen = stream.until(ended(run_id))
    stream.close()
    names = [message["event"] for message in seen]
    assert names[:2] == ["task:queued", "task:started"] and names[-1] == "task:completed"
    assert "task:progress" in names
    ids = [message["id"] for message in seen]
    assert ids == sorted(set(ids))
    assert all(message["data"]["task_id"] == "counting" and message["data"]["run_id"] == run_id for message in seen)
    assert seen[-2]["data"]["progress"]["current"] == 200  # the last progress always arrives


def test_resuming_with_last_event_id_delivers_every_missed_event(live):
    stream = Stream(live, "?task=quick")
    first = trigger(live, "quick")
    last_seen = stream.until(ended(first))[-1]["id"]
    stream.close()  # a forced disconnect; more happens meanwhile
    missed_runs = [trigger(live, "quick") for _ in range(3)]
    database = sqlite3.connect(live.database)
    wait_until(lambda: database.execute(
        "SELECT COUNT(*) FROM tasks_app_event WHERE name = 'task:completed' AND id > ?", (last_seen,)).fetchone()[0] == 3,
        timeout=20, what="the missed runs to complete")
    expected = database.execute("SELECT id, name FROM tasks_app_event WHERE task_id = 'quick' AND id > ? ORDER BY id",
                                (last_seen,)).fetchall()
    resumed = Stream(live, "?task=quick", headers={"Last-Event-ID": str(last_seen)})
    got = [(message["id"], message["event"]) for message in (resumed.next() for _ in expected)]
    resumed.close()
    assert got == expected
    assert [name for _, name in expected].count("task:completed") == len(missed_runs) == 3


def test_filters_by_task_and_by_run(live):
    by_task = Stream(live, "?task=quick")
    one = trigger(live, "quick")
    # It may have ended already: replay what the run wrote (Last-Event-ID 0), then live.
    by_run = Stream(live, f"?run={one}", headers={"Last-Event-ID": "0"})
    other = trigger(live, "counting", parameters={"count": 10})
    mine = trigger(live, "quick")
    seen = by_task.until(ended(mine))
    assert {message["data"]["task_id"] for message in seen} == {"quick"} and other not in str(seen)
    trigger(live, "quick")  # after it: run-filtered streams see nothing of it
    wait_until(lambda: requests.get(f"{live.base}/api/runs/{one}", headers={"X-API-Key": live.read_key},
                                    timeout=10).status_code == 200, what="the first run to end")
    by_run_seen = by_run.until(lambda message: message["event"] == "task:completed")
    assert {message["data"]["run_id"] for message in by_run_seen} == {one}
    by_task.close()
    by_run.close()


def test_a_quiet_stream_gets_keep_alive_comments(live):
    stream = Stream(live, "?task=nothing-happens-here")
    started = time.monotonic()
    for line in stream.lines:
        if line.startswith(":"):
            break
    stream.close()
    assert time.monotonic() - started < 3  # TASKDECK_SSE_KEEPALIVE=1 here; 10 s by default


def test_the_stream_needs_a_caller_with_tasks_read(live):
    anonymous = requests.get(f"{live.base}/api/events", timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["Content-Type"] == "application/problem+json"
    visitor = requests.get(f"{live.base}/api/events", cookies={"sessionid": live.visitor_session}, timeout=10)
    assert visitor.status_code == 403 and visitor.json()["type"] == "/api/problems/permission-denied"
    bad = requests.get(f"{live.base}/api/events", headers={"X-API-Key": live.read_key, "Last-Event-ID": "x"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["errors"][0]["location"] == "header.Last-Event-ID"


def open_sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += fd.readlink().name.startswith("socket:")
        except FileNotFoundError:  # closed while we looked
            pass
    return count


def settled_sockets(pid: int) -> int:
    """The web process's socket count once connections from earlier requests have closed."""
    counts = [open_sockets(pid)]

    def steady() -> bool:
        time.sleep(0.3)
        counts.append(open_sockets(pid))
        return counts[-1] == counts[-2]

    wait_until(steady, timeout=10, interval=0, what="the socket count to settle")
    return counts[-1]


def test_clients_that_leave_free_their_connections_at_once(live):
    before = settled_sockets(live.web_pid)
    streams = [Stream(live, f"?task=t{number}") for number in range(20)]
    assert open_sockets(live.web_pid) >= before + 20
    for stream in streams:
        stream.close()
    wait_until(lambda: open_sockets(live.web_pid) <= before + 1, timeout=5, what="the web process to let go")


def test_a_last_event_id_past_the_newest_resumes_from_the_newest(live):
    database = sqlite3.connect(live.database)
    newest = database.execute("SELECT MAX(id) FROM tasks_app_event").fetchone()[0] or 0
    resumed = Stream(live, "?task=quick", headers={"Last-Event-ID": str(newest + 1_000_000)})
    run_id = trigger(live, "quick")
    seen = resumed.until(ended(run_id))
    resumed.close()
    assert seen[0]["event"] == "task:queued" and seen[0]["id"] > newest


def test_the_stream_takes_any_header_or_query_string_without_a_server_error(live):
    """Hypothesis over what /api/events reads (test_fuzz.py does the other routes)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from .conftest import FUZZ_CASES
    from .test_fuzz import FUZZ, header_values, query_strings

    @settings(FUZZ, max_examples=max(FUZZ.max_examples // 2, 10))
    @given(last_event_id=header_values, key=header_values, query=query_strings, use_key=st.booleans())
    def send(last_event_id: str, key: str, query: str, use_key: bool) -> None:
        FUZZ_CASES["hypothesis GET /api/events"] += 1
        headers = {"Last-Event-ID": last_event_id, "X-API-Key": live.read_key if use_key else key}
        with requests.get(f"{live.base}/api/events?{query}", headers=headers, stream=True, timeout=10) as response:
            assert response.status_code < 500, (headers, query, response.text[:300] if response.status_code != 200 else "")

    send()
    assert requests.get(f"{live.base}/api/tasks", headers={"X-API-Key": live.read_key}, timeout=10).status_code == 200
