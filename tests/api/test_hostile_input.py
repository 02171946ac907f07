"""What a hostile or careless caller sends: refused at the door with a problem naming the field,
never a 500, and never anything stored that breaks a page for everyone else (issue 11)."""
import json

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from tasks_app.models import Run

from ..factories import make_run, make_task, string
from .conftest import assert_problem, make_key

pytestmark = pytest.mark.django_db(transaction=True)

SURROGATE = "gba\ud800"


@pytest.fixture
def run_key():
    return make_key("tasks:run")


@pytest.fixture
def scan():
    return make_task(id="scan", parameters=[string("platforms")], cron_string="0 3 * * *")


def post_json(api, path, body, *, key, **kwargs):
    """The body as raw JSON text: requests' own encoder would refuse a lone surrogate."""
    return api.post(path, data=json.dumps(body), key=key, headers={"Content-Type": "application/json"}, **kwargs)


def test_a_lone_surrogate_in_a_parameter_value_is_a_400_naming_it_and_stores_nothing(api, run_key, scan):
    body = assert_problem(post_json(api, "/api/tasks/scan/run", {"parameters": {"platforms": SURROGATE}}, key=run_key),
                          400, "invalid-text")
    assert body["errors"] == [{"location": "body.parameters.platforms",
                               "message": "Contains a lone surrogate (\\ud800), which is not valid Unicode text."}]
    assert not Run.objects.exists()
    assert api.get("/api/runs", key=run_key).status_code == 200


def test_a_lone_surrogate_in_a_parameter_key_or_a_nul_anywhere_is_a_400(api, run_key, scan):
    body = assert_problem(post_json(api, "/api/tasks/scan/run", {"parameters": {"plat\udc80": "gba"}}, key=run_key),
                          400, "invalid-text")
    assert body["errors"][0]["location"] == "body.parameters.plat\\udc80"
    body = assert_problem(post_json(api, "/api/tasks/scan/run", {"parameters": {"platforms": "a\x00b"}}, key=run_key),
                          400, "invalid-text")
    assert "NUL" in body["errors"][0]["message"]
    assert not Run.objects.exists()


def test_a_run_stored_with_such_text_before_the_door_closed_still_renders_everywhere(api, run_key, scan):
    """SQLite keeps the JSON escape as written; every list and page that shows the run renders it
    as its escape text instead of failing."""
    run = make_run(scan, end_reason="success", parameters={"platforms": SURROGATE}, result={SURROGATE: [SURROGATE]})
    with connection.cursor() as cursor:
        cursor.execute("SELECT parameters FROM tasks_app_run WHERE id = %s", [run.pk.hex])
        assert cursor.fetchone()[0] == '{"platforms": "gba\\ud800"}'  # the escape, as JSON wrote it
    for path in ("/api/runs", f"/api/runs/{run.pk}", "/api/tasks/scan/history", "/api/tasks"):
        response = api.get(path, key=run_key)
        assert response.status_code == 200, (path, response.text)
    shown = api.get(f"/api/runs/{run.pk}", key=run_key).json()
    assert shown["parameters"] == {"platforms": "gba\\ud800"} and shown["result"] == {"gba\\ud800": ["gba\\ud800"]}
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password="x"))
    for page in (f"/admin/tasks_app/run/{run.pk}/change/", "/admin/tasks_app/run/", "/admin/tasks_app/task/scan/change/"):
        response = admin.get(page)
        assert response.status_code == 200, page
    assert "gba\\\\ud800" in admin.get(f"/admin/tasks_app/run/{run.pk}/change/").content.decode()  # as JSON shows it


def test_a_body_over_one_mebibyte_is_a_413(api, run_key, scan):
    big = {"parameters": {"platforms": "x" * (10 * 1024 * 1024)}}
    assert_problem(post_json(api, "/api/tasks/scan/run", big, key=run_key), 413, "request-too-large")
    assert not Run.objects.exists()


def test_json_nested_deeply_is_a_400(api, run_key, scan):
    for depth in (100_000, 40):
        body = "[" * depth + "]" * depth
        response = api.post("/api/tasks/scan/run", data=body, key=run_key, headers={"Content-Type": "application/json"})
        assert_problem(response, 400, "malformed-request")
    nested = {"parameters": {"platforms": "gba"}}
    for _ in range(40):
        nested = {"parameters": {"platforms": nested}}
    assert_problem(post_json(api, "/api/tasks/scan/run", nested, key=run_key), 400, "malformed-request")


@pytest.mark.parametrize("body", ["[]", "null", "3", '"text"', "[{}]"])
def test_a_body_that_is_not_an_object_is_a_400(api, run_key, scan, body):
    response = api.post("/api/tasks/scan/run", data=body, key=run_key, headers={"Content-Type": "application/json"})
    assert "must be a JSON object" in assert_problem(response, 400, "malformed-request")["detail"]
    assert not Run.objects.exists()


def test_nan_and_text_that_is_not_utf8_are_400s(api, run_key, scan):
    for raw in (b'{"parameters": {"platforms": NaN}}', b'{"parameters": {"platforms": "caf\xe9"}}'):
        response = api.post("/api/tasks/scan/run", data=raw, key=run_key, headers={"Content-Type": "application/json"})
        assert_problem(response, 400, "malformed-request")


def test_an_over_long_time_zone_or_cron_string_is_a_400_naming_it(api, scan):
    key = make_key("tasks:manage")
    response = api.put("/api/tasks/scan/schedule", json={"cron_string": "0 3 * * *", "timezone": "E" * 5000}, key=key)
    assert assert_problem(response, 400, "invalid-request")["errors"][0]["location"] == "body.timezone"
    response = api.put("/api/tasks/scan/schedule", json={"cron_string": "0 " * 3000}, key=key)
    assert assert_problem(response, 400, "invalid-request")["errors"][0]["location"] == "body.cron_string"


@pytest.mark.parametrize(("query", "location"), [
    ("status=,,,", "query.status"), ("status=, ,", "query.status"), ("task=a%00b", "query.task"),
    ("trigger=nonsense", "query.trigger"), ("limit=0", "query.limit"), ("task=" + "t" * 300, "query.task"),
])
def test_bad_query_strings_are_400s_naming_the_parameter(api, run_key, query, location):
    response = api.get(f"/api/runs?{query}", key=run_key)
    assert assert_problem(response, 400, response.json()["type"].rsplit("/", 1)[-1])["errors"][0]["location"] == location
