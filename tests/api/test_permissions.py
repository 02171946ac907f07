"""Who may call what: every route against every kind of caller, over HTTP."""
from datetime import timedelta

import pytest
import requests
from django.contrib.auth.models import Permission, User
from django.test import Client

from tasks_app import clock, services
from tasks_app.services import keys
from tasks_app.models import ApiKey, Run, RunStatus, RunTrigger

from ..factories import make_task
from .conftest import assert_problem, make_key

pytestmark = pytest.mark.django_db(transaction=True)

RUN_ID = "00000000-0000-0000-0000-000000000000"
#: (method, path, body, scope needed)
ROUTES = [
    ("GET", "/api/tasks", None, "tasks:read"),
    ("GET", "/api/tasks/report", None, "tasks:read"),
    ("GET", "/api/tasks/report/history", None, "tasks:read"),
    ("POST", "/api/tasks/report/run", {}, "tasks:run"),
    ("POST", "/api/tasks/report/cancel", None, "tasks:run"),
    ("PUT", "/api/tasks/report/enabled", {"enabled": True}, "tasks:manage"),
    ("PUT", "/api/tasks/report/interval", {"interval": 5, "unit": "minutes"}, "tasks:manage"),
    ("PUT", "/api/tasks/report/schedule", {"cron_string": "* * * * *"}, "tasks:manage"),
    ("GET", "/api/runs", None, "tasks:read"),
    ("GET", f"/api/runs/{RUN_ID}", None, "tasks:read"),
    ("GET", f"/api/runs/{RUN_ID}/activity", None, "tasks:read"),
    ("GET", f"/api/runs/{RUN_ID}/log", None, "tasks:read"),
    ("GET", f"/api/runs/{RUN_ID}/log/stream", None, "tasks:read"),
    ("POST", f"/api/runs/{RUN_ID}/cancel", None, "tasks:run"),
    ("DELETE", f"/api/runs/{RUN_ID}", None, "tasks:manage"),
]
GRANTS = {"tasks:read": {"tasks:read"}, "tasks:run": {"tasks:read", "tasks:run"},
          "tasks:manage": {"tasks:read", "tasks:run", "tasks:manage"}}


def session_for(live_server, username: str) -> requests.Session:
    """A logged-in browser-like session (any user, staff or not) with its CSRF token at hand."""
    client = Client()
    assert client.login(username=username, password="correct horse battery")
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    session.get(f"{live_server.url}/admin/login/")  # sets the csrftoken cookie
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    session.headers["Referer"] = f"{live_server.url}/admin/"
    return session


def call(session: requests.Session, base: str, method: str, path: str, body, headers=None) -> requests.Response:
    return session.request(method, base + path, json=body, headers=headers or {}, timeout=10)


@pytest.fixture
def callers(live_server):
    """Every kind of caller, and the scopes each should end up with."""
    staff = User.objects.create_user("staff", password="correct horse battery", is_staff=True)
    viewer = User.objects.create_user("viewer", password="correct horse battery", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_task", content_type__app_label="tasks_app"))
    operator = User.objects.create_user("operator", password="correct horse battery", is_staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="run_task", content_type__app_label="tasks_app"))
    User.objects.create_user("member", password="correct horse battery")
    User.objects.create_superuser("root", password="correct horse battery")
    plain = requests.Session()
    result = {"nobody": (plain, {}, set())}
    for scope in GRANTS:
        result[f"key {scope}"] = (plain, {"X-API-Key": make_key(scope)}, GRANTS[scope])
    result["bearer tasks:run"] = (plain, {"Authorization": f"Bearer {make_key('tasks:run')}"}, GRANTS["tasks:run"])
    for name, scopes in (("member", set()), ("staff", set()), ("viewer", GRANTS["tasks:read"]),
                         ("operator", GRANTS["tasks:run"]), ("root", GRANTS["tasks:manage"])):
        result[f"session {name}"] = (session_for(live_server, name), {}, scopes)
    assert staff.pk
    return result


def test_every_route_checks_its_scope_for_every_caller(live_server, callers):
    make_task(id="report", interval=10, interval_unit="minutes", cron_string="")
    failures = []
    for caller, (session, headers, scopes) in callers.items():
        for method, path, body, needed in ROUTES:
            response = call(session, live_server.url, method, path, body, headers)
            if caller == "nobody":
                expected = {401}
            elif needed in scopes:
                expected = set(range(200, 300)) | {400, 404, 409}  # allowed through: the outcome is the route's own
            else:
                expected = {403}
            if response.status_code not in expected:
                failures.append(f"{caller}: {method} {path} -> {response.status_code} {response.text[:120]}")
            elif response.status_code in (401, 403):
                assert response.headers["Content-Type"] == "application/problem+json"
    assert not failures, "\n".join(failures)


def test_no_caller_gets_401_with_how_to_authenticate(api):
    response = api.get("/api/tasks")
    body = assert_problem(response, 401, "not-authenticated")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="taskdeck"'
    assert "API key" in api.get("/api/problems/not-authenticated").text
    assert body["instance"] == "/api/tasks"


def test_unknown_revoked_and_expired_keys_are_refused(api, clock):
    good = make_key("tasks:read", name="good")
    assert api.get("/api/tasks", key=good).status_code == 200
    assert_problem(api.get("/api/tasks", key="td_not-a-key"), 401, "authentication-failed")
    keys.revoke_key(ApiKey.objects.get(name="good"))
    assert_problem(api.get("/api/tasks", key=good), 401, "authentication-failed")
    expiring = make_key("tasks:read", name="expiring", expires_in="1h")
    assert api.get("/api/tasks", key=expiring).status_code == 200
    clock.advance(hours=1, seconds=1)
    assert_problem(api.get("/api/tasks", key=expiring), 401, "authentication-failed")


def test_a_missing_scope_is_403_naming_it(api):
    body = assert_problem(api.post("/api/tasks/report/run", key=make_key("tasks:read")), 403, "permission-denied")
    assert "tasks:run" in body["detail"]


def test_session_callers_need_the_csrf_token_on_unsafe_methods(live_server, callers):
    make_task(id="report")
    session, _, _ = callers["session root"]
    response = session.post(f"{live_server.url}/api/tasks/report/run", json={}, headers={"X-CSRFToken": "wrong"})
    body = assert_problem(response, 403, "permission-denied")
    assert "CSRF" in body["detail"]
    response = session.post(f"{live_server.url}/api/tasks/report/run", json={})
    assert response.status_code == 202
    assert Run.objects.get(pk=response.json()["run_id"]).triggered_by == "user:root"


def test_triggered_by_names_the_key(api):
    make_task(id="report")
    response = api.post("/api/tasks/report/run", key=make_key("tasks:run", name="ci-bot"))
    assert Run.objects.get(pk=response.json()["run_id"]).triggered_by == "key:ci-bot"


def test_last_use_is_recorded_without_a_write_per_request(api, clock):
    key = make_key("tasks:read", name="busy")
    for _ in range(3):
        api.get("/api/tasks", key=key)
    first = ApiKey.objects.get(name="busy").last_used_at
    assert first == clock.now()
    clock.advance(seconds=30)
    api.get("/api/tasks", key=key)
    assert ApiKey.objects.get(name="busy").last_used_at == first
    clock.advance(seconds=31)
    api.get("/api/tasks", key=key)
    assert ApiKey.objects.get(name="busy").last_used_at == clock.now()


def test_the_key_scopes_are_checked_when_created():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="Scopes must be some of"):
        make_key("tasks:everything")
    with pytest.raises(CommandError, match="Durations look like"):
        make_key("tasks:read", expires_in="soon")
    make_key("tasks:read", name="dup")
    with pytest.raises(CommandError, match="already exists"):
        make_key("tasks:read", name="dup")


def test_runs_of_a_running_task_stay_visible_to_readers(api):
    task = make_task(id="report")
    run = services.trigger(task, source=RunTrigger.API, requested_by="t")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, started_at=clock.now() - timedelta(seconds=3))
    body = api.get(f"/api/runs/{run.pk}", key=make_key("tasks:read")).json()
    assert body["status"] == "running" and body["duration"] >= 3
