"""Live events over a real `serve`: SSE (/api/events) and the WebSocket (/ws/tasks/).

One `manage.py serve` (web, worker, scheduler) on a free loopback port with its own database,
keys made by the management command, and a non-staff user's session made in that database.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from ..conftest import wait_until
from ..processes import Project, descendants, free_port, stop_serve

DEFINITIONS = """
[tasks.quick]
kind = "python"
callable = "tests.sample_tasks.noop"
max_concurrent = 10

[tasks.counting]
kind = "python"
callable = "tests.sample_tasks.fast_progress"
max_concurrent = 10
parameters = [{ key = "count", type = "number", default = 200 }]
"""

MAKE_SESSION = """
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
user = User.objects.create_user("visitor", password="x")
session = SessionStore()
session["_auth_user_id"] = str(user.pk)
session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
session["_auth_user_hash"] = user.get_session_auth_hash()
session.create()
print(session.session_key)
"""


@dataclass
class Live:
    base: str
    ws: str
    read_key: str
    run_key: str
    visitor_session: str
    database: Path
    web_pid: int


@pytest.fixture(scope="module")
def live(process_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("events")
    definitions = folder / "taskdeck.toml"
    definitions.write_text(DEFINITIONS)
    env = {**process_env, "TASKDECK_DEFINITIONS": str(definitions), "TASKDECK_EXTRA_APPS": "",
           "TASKDECK_SSE_KEEPALIVE": "1"}
    project = Project(folder / "db.sqlite3", env)
    project.manage("migrate", "--noinput", "-v0")
    read_key = project.manage("create_api_key", "--name", "reader", "--scopes", "tasks:read").stdout.split()[-1]
    run_key = project.manage("create_api_key", "--name", "runner", "--scopes", "tasks:run").stdout.split()[-1]
    visitor = project.manage("shell", "-c", MAKE_SESSION).stdout.split()[-1]
    project.manage("shell", "-c", "from django.contrib.auth.models import User; "
                                  "User.objects.create_superuser('root', password='root-password')")
    port = free_port()
    serve = project.start_serve(port, folder / "serve.log")
    web = next(pid for pid in descendants(serve.pid) if "uvicorn" in Path(f"/proc/{pid}/cmdline").read_text())
    try:
        yield Live(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws/tasks/", read_key, run_key, visitor,
                   project.database, web)
    finally:
        stop_serve(serve, log=folder / "serve.log")


def trigger(live: Live, task_id: str, **body: object) -> str:
    response = requests.post(f"{live.base}/api/tasks/{task_id}/run", json=body, timeout=10,
                             headers={"X-API-Key": live.run_key})
    assert response.status_code == 202, response.text
    return response.json()["run_id"]


class Stream:
    """An SSE connection, read message by message (comments kept apart)."""

    def __init__(self, live: Live, query: str = "", headers: dict[str, str] | None = None) -> None:
        self.response = requests.get(f"{live.base}/api/events{query}", stream=True, timeout=10,
                                     headers={"X-API-Key": live.read_key, **(headers or {})})
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        self.lines = self.response.iter_lines(decode_unicode=True)
        self.comments = 0
        # The stream's first line comes once it is subscribed: from here no event passes it by.
        assert next(self.lines).startswith("retry:")

    def next(self, *, within: float = 20) -> dict[str, object]:
        """The next message; keep-alive comments alone do not keep a test waiting past ``within`` s."""
        message: dict[str, object] = {}
        deadline = time.monotonic() + within
        for line in self.lines:
            if time.monotonic() > deadline:
                raise AssertionError(f"no event within {within} s")
            if line == "" and "event" in message:
                return message
            if line.startswith(":"):
                self.comments += 1
            elif line:
                field, _, value = line.partition(": ")
                message[field] = json.loads(value) if field == "data" else int(value) if field == "id" else value
        raise AssertionError("the stream ended")

    def until(self, predicate, limit: int = 500) -> list[dict[str, object]]:
        seen = []
        for _ in range(limit):
            seen.append(self.next())
            if predicate(seen[-1]):
                return seen
        raise AssertionError(f"not seen in {limit} events: {seen[-5:]}")

    def close(self) -> None:
        self.response.close()


def ended(run_id: str):
    return lambda message: message["data"].get("run_id") == run_id and message["event"] in (
        "task:completed", "task:error", "task:cancelled", "task:skipped")


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


# --- WebSocket ------------------------------------------------------------------------------------


def test_the_websocket_sends_the_same_events_as_json_frames(live):
    with connect(f"{live.ws}?task=quick", additional_headers={"Authorization": f"Bearer {live.read_key}"}) as socket:
        stream = Stream(live, "?task=quick")
        run_id = trigger(live, "quick")
        frames = []
        while not frames or frames[-1]["event"] != "task:completed":
            frames.append(json.loads(socket.recv(timeout=10)))
        sse = stream.until(ended(run_id))
        stream.close()
    assert [(frame["id"], frame["event"], frame["data"]) for frame in frames] == [
        (message["id"], message["event"], message["data"]) for message in sse]


def test_a_websocket_client_can_change_what_it_follows(live):
    with connect(live.ws, additional_headers={"X-API-Key": live.read_key}) as socket:
        socket.send(json.dumps({"subscribe": {"task": "counting"}}))
        time.sleep(0.3)  # the filter applies to what comes next; give the message time to land
        trigger(live, "quick")
        run_id = trigger(live, "counting", parameters={"count": 5})
        frame = json.loads(socket.recv(timeout=10))
        assert frame["data"]["task_id"] == "counting" and frame["data"]["run_id"] == run_id


@pytest.mark.parametrize(("headers", "code"), [
    ({}, 4401),
    ({"X-API-Key": "td_not-a-key"}, 4401),
    ({"Cookie": "sessionid=SESSION", "Origin": "BASE"}, 4403),  # this site's page, a user with no scopes
    ({"Cookie": "sessionid=SESSION", "Origin": "http://evil.example"}, 4401),  # another site's page
    # The same host, another origin: another port, another scheme, no port (issue 11).
    ({"Cookie": "sessionid=SESSION", "Origin": "http://localhost:6666"}, 4401),
    ({"Cookie": "sessionid=SESSION", "Origin": "http://127.0.0.1:6666"}, 4401),
    ({"Cookie": "sessionid=SESSION", "Origin": "https://127.0.0.1:1"}, 4401),
    ({"Cookie": "sessionid=SESSION", "Origin": "http://127.0.0.1"}, 4401),
    ({"Cookie": "sessionid=SESSION", "Origin": "null"}, 4401),
    ({"Cookie": "sessionid=SESSION"}, 4401),
])
def test_the_websocket_closes_4401_without_a_caller_and_4403_without_the_scope(live, headers, code):
    headers = {name: value.replace("SESSION", live.visitor_session).replace("BASE", live.base)
               for name, value in headers.items()}
    with connect(live.ws, additional_headers=headers) as socket, pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=10)
    assert closed.value.rcvd.code == code


def test_the_admin_session_opens_the_socket_from_this_sites_pages_only(live):
    """A superuser's session reads events from a page of this site, and from nowhere else on its host."""
    admin = requests.Session()
    page = admin.get(f"{live.base}/admin/login/", timeout=10)
    token = page.cookies["csrftoken"]
    admin.post(f"{live.base}/admin/login/", data={"username": "root", "password": "root-password",
                                                  "csrfmiddlewaretoken": token, "next": "/admin/"},
               headers={"Referer": f"{live.base}/admin/login/"}, timeout=10)
    cookie = f"sessionid={admin.cookies['sessionid']}"
    with connect(f"{live.ws}?task=quick", additional_headers={"Cookie": cookie, "Origin": live.base}) as socket:
        run_id = trigger(live, "quick")
        frame = json.loads(socket.recv(timeout=10))
        assert frame["data"]["run_id"] == run_id
    for origin in ("http://localhost:6666", live.base.replace("http:", "https:")):
        with connect(live.ws, additional_headers={"Cookie": cookie, "Origin": origin}) as socket, \
                pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd.code == 4401


def test_a_websocket_frame_too_big_or_too_deep_never_kills_the_stream(live):
    with connect(f"{live.ws}?task=quick", additional_headers={"X-API-Key": live.read_key}) as socket:
        socket.send("[" * 4000 + "]" * 4)  # deep, within the size limit: ignored
        run_id = trigger(live, "quick")
        frame = json.loads(socket.recv(timeout=10))
        assert frame["data"]["run_id"] == run_id
        socket.send("[" * 100_000)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                socket.recv(timeout=10)
        assert closed.value.rcvd.code == 1009
    with connect(f"{live.ws}?task=quick", additional_headers={"X-API-Key": live.read_key}) as socket:
        run_id = trigger(live, "quick")  # the web process still serves sockets
        assert json.loads(socket.recv(timeout=10))["data"]["task_id"] == "quick"


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
