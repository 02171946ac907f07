"""Errors that are hard to provoke on purpose, and the pages around the API."""
import logging
import re
import subprocess
import sys

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.exceptions import Throttled
from rest_framework.test import APIRequestFactory

from tasks_app import clock, services
from tasks_app.api.problems import exception_handler
from tasks_app.models import Task

from ..conftest import ROOT, wait_until
from ..factories import make_run, make_task
from ..processes import free_port
from .conftest import assert_problem, make_key


def handle(exc):
    request = APIRequestFactory().get("/api/tasks")
    return exception_handler(exc, {"request": request})


def test_throttling_is_a_429_problem_with_retry_after():
    response = handle(Throttled(wait=12))
    assert response.status_code == 429 and response["Retry-After"] == "12"
    assert response.data["type"] == "/api/problems/throttled"
    assert response.content_type == "application/problem+json"


def test_an_unexpected_error_is_a_500_problem_logged_with_its_traceback_and_sent_without(caplog):
    with caplog.at_level(logging.ERROR):
        try:
            raise RuntimeError("secret internals")
        except RuntimeError as error:
            response = handle(error)
    assert response.status_code == 500 and response.data["type"] == "/api/problems/server-error"
    assert "secret internals" not in str(response.data)
    assert "Traceback" in caplog.text and "secret internals" in caplog.text


def test_health_is_503_when_the_database_is_unreachable(tmp_path, process_env):
    port = free_port()
    env = {**process_env, "DATABASE_URL": f"postgres://nobody@/nothing?host={tmp_path}"}  # no server there
    web = subprocess.Popen([sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port),
                            "--lifespan", "off", "--log-level", "warning"], cwd=ROOT, env=env)
    try:
        def answered():
            try:
                return [requests.get(f"http://127.0.0.1:{port}/api/health", timeout=5)]  # a 503 Response is falsy
            except requests.ConnectionError:
                return None
        [response] = wait_until(answered, timeout=20, interval=0.2, what="the web server")
        assert response.status_code == 503
        assert response.json()["status"] == "error" and response.json()["checks"]["database"] == "error"
    finally:
        web.terminate()
        web.wait(10)


@pytest.mark.django_db(transaction=True)
def test_the_browsable_api_works_for_a_logged_in_admin(live_server):
    User.objects.create_superuser("root", password="correct horse battery")
    make_task(id="report")
    client = Client()
    client.login(username="root", password="correct horse battery")
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    page = session.get(f"{live_server.url}/api/tasks/report", headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Scan" not in page.text and "report" in page.text and "Django REST framework" in page.text


@pytest.mark.django_db(transaction=True)
def test_lists_survive_a_removed_task(api):
    task = make_task(id="gone")
    run = make_run(task)  # queued, never handed to a worker that could end it first
    services.cancel_run(run.pk)
    Task.objects.filter(pk="gone").update(removed_at=clock.now())
    key = make_key("tasks:read")
    assert [t["id"] for t in api.get("/api/tasks", key=key).json()["tasks"]] == []
    assert [r["id"] for r in api.get("/api/runs", key=key).json()["runs"]] == [str(run.pk)]
    assert api.get(f"/api/runs/{run.pk}", key=key).status_code == 200
    assert api.get("/api/tasks/gone/history", key=key).json()["pagination"]["total"] == 1


@pytest.mark.django_db(transaction=True)
def test_every_run_route_is_404_once_a_run_is_deleted(api):
    run = make_run(make_task(id="report"))
    services.cancel_run(run.pk)
    services.delete_run(run.pk)
    key = make_key("tasks:manage")
    for method, suffix in (("GET", ""), ("GET", "/activity"), ("GET", "/log"), ("POST", "/cancel"), ("DELETE", "")):
        response = api.request(method, f"/api/runs/{run.pk}{suffix}", key=key)
        assert response.status_code == 404 and response.json()["type"] == "/api/problems/run-not-found"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("page", ["/api/schema/", "/api/schema/?format=json", "/api/docs/", "/api/redoc/"])
def test_the_schema_and_its_viewers_need_a_caller_with_read(live_server, page):
    assert_problem(requests.get(f"{live_server.url}{page}", timeout=10), 401, "not-authenticated")
    nobody = User.objects.create_user("plain", password="pw")  # logged in, but not staff: no scopes
    client = Client()
    client.force_login(nobody)
    response = client.get(page)
    assert response.status_code == 403 and response["Content-Type"] == "application/problem+json"


@pytest.mark.django_db(transaction=True)
def test_schema_swagger_and_redoc_are_served_with_no_outside_network(live_server):
    reader = {"X-API-Key": make_key("tasks:read")}
    yaml_schema = requests.get(f"{live_server.url}/api/schema/", headers=reader, timeout=10)
    assert yaml_schema.status_code == 200 and "openapi: 3" in yaml_schema.text
    json_schema = requests.get(f"{live_server.url}/api/schema/?format=json", headers=reader, timeout=10).json()
    assert {"ApiKeyHeader", "BearerKey", "cookieAuth"} <= set(json_schema["components"]["securitySchemes"])
    for page in ("/api/docs/", "/api/redoc/"):
        html = requests.get(f"{live_server.url}{page}", headers=reader, timeout=10).text
        outside = re.findall(r'(?:src|href)="((?:[a-z]+:)?//[^"]*)"', html)
        assert not outside, f"{page} links {outside}"
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
        assert assets, html[:500]
        for asset in assets:
            assert asset.startswith("/static/"), f"{page} loads {asset} from outside"
            assert requests.get(f"{live_server.url}{asset}", timeout=10).status_code == 200
