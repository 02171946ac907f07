"""Property-based fuzzing (Hypothesis) of every write route, the list routes' query strings and the
headers the API reads, over a real HTTP server (the event stream's own, which only an ASGI server
serves, are fuzzed against a real ``serve`` in test_events.py): arbitrary Unicode (lone surrogates and NUL
included), arbitrary nesting and sizes, bytes that are not UTF-8. Whatever comes in: no 5xx, and
afterwards every list and page, API and admin, still renders.

Generation is derandomised, so CI sees the same cases every run; ``TASKDECK_FUZZ_EXAMPLES`` and
``TASKDECK_FUZZ_RANDOM=1`` (``make fuzz``) ask for more cases, and new ones each run.
"""
from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app.models import Run

from ..factories import make_run, make_task, number, string
from .conftest import FUZZ_CASES, make_key

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("TASKDECK_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("TASKDECK_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

#: Any character, lone surrogates and NUL included (Hypothesis leaves surrogates out by default).
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
                           max_leaves=25)


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


#: Request bodies: JSON of any shape (surrogates travel as \\u escapes), deep nesting, big text,
#: and bytes that are not JSON or not UTF-8 at all.
bodies = st.one_of(
    json_values.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries({}, optional={"parameters": json_values, "dry_run": json_values, "force": json_values,
                                        "enabled": json_values, "interval": json_values, "unit": json_values,
                                        "cron_string": json_values, "timezone": json_values}
                          ).map(lambda value: json.dumps(value).encode()),
    st.integers(1, 200_000).map(lambda depth: deep(depth).encode()),
    st.sampled_from([1, 1024 * 1024, 3 * 1024 * 1024]).map(lambda size: json.dumps({"parameters": {"p": "x" * size}}).encode()),
    st.binary(max_size=200),
)

#: A query string of any keys and values, percent-encoded the way a client might (surrogates as
#: the bytes of their CESU-8 form, which are not UTF-8).
query_strings = st.lists(st.tuples(any_text, any_text), max_size=4).map(
    lambda pairs: "&".join(f"{quote(key, errors='surrogatepass')}={quote(value, errors='surrogatepass')}"
                           for key, value in pairs))

#: Header values a client can put on the wire (Latin-1, no leading blank), and the names the API reads.
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80).map(str.lstrip)


class Target:
    """The fuzzed server's data: a task of each shape, runs in every state."""

    def __init__(self, live_server: Any) -> None:
        self.base = live_server.url
        self.session = requests.Session()
        self.key = make_key("tasks:manage")
        make_task(id="scan", parameters=[string("platforms", choices=["gba", "n64"]), number("pace", 0)],
                  cron_string="0 3 * * *", supports_dry_run=True)
        make_task(id="every", interval=6, interval_unit="hours", on_overlap="queue", queue_max=3)
        make_task(id="plain", max_concurrent=50)
        self.ended = make_run(make_task(id="done"), end_reason="success")
        self.queued = make_run(make_task(id="waiting"))

    def send(self, method: str, path: str, *, body: bytes | None = None, query: str = "",
             headers: dict[str, str] | None = None) -> requests.Response:
        FUZZ_CASES[f"hypothesis {method} {path.replace(str(self.queued.pk), '{run}').replace(str(self.ended.pk), '{run}')}"] += 1
        url = f"{self.base}{path}" + (f"?{query}" if query else "")
        response = self.session.request(method, url, data=body, timeout=30, stream=True,
                                        headers={"X-API-Key": self.key, "Content-Type": "application/json",
                                                 **(headers or {})})
        response.close()  # an event stream never ends: its status line is what counts
        assert response.status_code < 500, (method, url, response.status_code, body and body[:300])
        return response

    def write_routes(self) -> list[tuple[str, str]]:
        return [("POST", "/api/tasks/scan/run"), ("POST", "/api/tasks/plain/run"), ("POST", "/api/tasks/every/run"),
                ("POST", "/api/tasks/scan/cancel"), ("PUT", "/api/tasks/scan/enabled"),
                ("PUT", "/api/tasks/every/interval"), ("PUT", "/api/tasks/scan/schedule"),
                ("POST", f"/api/runs/{self.queued.pk}/cancel"), ("DELETE", f"/api/runs/{self.ended.pk}")]

    def everything_still_renders(self) -> None:
        reader = {"X-API-Key": self.key}
        pages = ["/api/tasks", "/api/runs?limit=500", "/api/tasks/scan/history?limit=500",
                 "/api/tasks/plain/history?limit=500"]
        pages += [f"/api/runs/{run_id}" for run_id in Run.objects.values_list("pk", flat=True)[:200]]
        for page in pages:
            response = self.session.get(f"{self.base}{page}", headers=reader, timeout=30)
            assert response.status_code in (200, 202), (page, response.text[:300])
        admin = Client()
        admin.force_login(User.objects.get_or_create(username="fuzz-root", is_staff=True, is_superuser=True)[0])
        admin_pages = ["/admin/", "/admin/tasks_app/task/", "/admin/tasks_app/run/", "/admin/tasks_app/task/scan/change/"]
        admin_pages += [f"/admin/tasks_app/run/{run_id}/change/" for run_id in Run.objects.values_list("pk", flat=True)[:50]]
        for page in admin_pages:
            assert admin.get(page).status_code == 200, page


@pytest.fixture
def target(live_server: Any) -> Target:
    return Target(live_server)


def test_write_routes_take_any_body_without_a_server_error(target):
    routes = target.write_routes()

    @FUZZ
    @given(route=st.sampled_from(routes), body=bodies)
    def send(route: tuple[str, str], body: bytes) -> None:
        target.send(*route, body=body)

    send()
    target.everything_still_renders()


def test_list_routes_take_any_query_string_without_a_server_error(target):
    routes = ["/api/tasks", "/api/runs", "/api/tasks/scan/history", f"/api/runs/{target.ended.pk}/activity",
              f"/api/runs/{target.ended.pk}/log", "/api/tasks/scan/run"]

    @FUZZ
    @given(route=st.sampled_from(routes), query=query_strings)
    def send(route: str, query: str) -> None:
        target.send("POST" if route.endswith("/run") else "GET", route, query=query, body=b"{}")

    send()
    target.everything_still_renders()


def test_the_headers_the_api_reads_take_any_value_without_a_server_error(target):
    @FUZZ
    @given(name=st.sampled_from(["X-API-Key", "Authorization", "Content-Type", "Accept"]),
           value=header_values, route=st.sampled_from(["/api/tasks", "/api/tasks/plain/run"]))
    def send(name: str, value: str, route: str) -> None:
        headers = {name: value, **({"X-API-Key": ""} if name == "Authorization" else {})}  # it alone names the caller
        target.send("POST" if route.endswith("/run") else "GET", route, body=b"{}", headers=headers)

    send()
    target.everything_still_renders()
