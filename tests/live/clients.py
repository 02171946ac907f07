"""SSE and WebSocket clients of a real `serve`, shared by the live-event tests.

``serving`` starts one `manage.py serve` (web, worker, scheduler) on a free loopback port with its
own database, keys made by the management command, and a non-staff user's session made in that
database. ``Stream`` reads /api/events message by message; ``trigger`` and ``ended`` drive runs.
"""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

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

[tasks.talking]
kind = "python"
callable = "tests.sample_tasks.talking"
max_concurrent = 10
parameters = [{ key = "lines", type = "number", default = 50 }, { key = "gate", type = "string", default = "" }]
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


@contextlib.contextmanager
def serving(process_env: dict[str, str], folder: Path) -> Iterator[Live]:
    """A serve of its own in ``folder``, with a keep-alive comment every second on quiet streams."""
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
