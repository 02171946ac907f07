"""The service routes of API.md over HTTP: start, stop and restart record what operators ask (the
supervisor acts on it; tests/supervision/), answer the Task with its instances, need tasks:run,
and refuse other kinds with 409 not-a-service."""
import pytest

from tasks_app.definitions.process import check_process
from tasks_app.models import Event, EventName, InstanceState, ServiceInstance, TaskKind

from ..factories import make_task
from .conftest import assert_problem, make_key

pytestmark = pytest.mark.django_db(transaction=True)


def web_service():
    return make_task(id="web", kind=TaskKind.SERVICE, callable="", timeout=None,
                     process={**check_process("web", {"argv": ["httpd"]}), "instances": 2, "autostart": True})


def test_stop_start_and_restart_record_what_operators_ask_and_answer_the_task(api):
    web_service()
    key = make_key("tasks:run")
    stopped = api.post("/api/tasks/web/stop", key=key)
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert body["id"] == "web" and body["service_state"] == "stopped"
    assert [row["index"] for row in body["instances"]] == [0, 1]
    assert not ServiceInstance.objects.filter(task_id="web", wanted=True).exists()

    assert api.post("/api/tasks/web/start", key=key).status_code == 200
    assert set(ServiceInstance.objects.filter(task_id="web").values_list("wanted", "start_requested")) == {(True, 1)}
    assert api.post("/api/tasks/web/restart", key=key).status_code == 200
    assert set(ServiceInstance.objects.filter(task_id="web").values_list("restart_requested", flat=True)) == {1}
    asked = Event.objects.filter(name=EventName.SERVICE_UPDATED, task_id="web").values_list("data__state", flat=True)
    assert list(asked) == ["stop", "start", "restart"]


def test_the_task_object_shows_each_instance(api):
    task = web_service()
    ServiceInstance.objects.create(task=task, index=0, wanted=True, state=InstanceState.RUNNING, pid=4242)
    ServiceInstance.objects.create(task=task, index=1, wanted=True, state=InstanceState.FATAL, last_exit_code=1)
    body = api.get("/api/tasks/web", key=make_key("tasks:read")).json()
    assert body["service_state"] == "degraded"
    assert body["instances"][0] | {"started_at": None} == {
        "index": 0, "state": "running", "pid": 4242, "run_id": None, "started_at": None, "restarts": 0,
        "last_exit_code": None, "next_start_at": None}
    listed = api.get("/api/tasks", key=make_key("tasks:read")).json()["tasks"]
    assert [task["service_state"] for task in listed if task["id"] == "web"] == ["degraded"]


def test_the_routes_need_tasks_run_and_a_service(api):
    web_service()
    make_task(id="plain")
    assert_problem(api.post("/api/tasks/web/stop", key=make_key("tasks:read")), 403, "permission-denied")
    assert_problem(api.post("/api/tasks/web/stop"), 401, "not-authenticated")
    for route in ("start", "stop", "restart"):
        assert_problem(api.post(f"/api/tasks/plain/{route}", key=make_key("tasks:run")), 409, "not-a-service")
        assert_problem(api.post(f"/api/tasks/nope/{route}", key=make_key("tasks:run")), 404, "task-not-found")
