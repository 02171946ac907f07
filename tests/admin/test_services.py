"""A service's admin page: its instances (state, pid, uptime, restarts, last exit, next start),
refreshed live, with start, stop and restart buttons for users who may run tasks."""
from __future__ import annotations

import pytest

from tasks_app.models import InstanceState, ServiceInstance

from ..factories import make_run, make_service, make_task
from .conftest import staff_client

pytestmark = pytest.mark.django_db


def with_instances(clock):
    task = make_service(id="web", process={"argv": ["httpd"], "instances": 2})
    run = make_run(task, status="running")
    ServiceInstance.objects.create(task=task, index=0, wanted=True, state=InstanceState.RUNNING, pid=4242, run=run,
                                   started_at=clock.now(), restarts=3, last_exit_code=1)
    ServiceInstance.objects.create(task=task, index=1, wanted=True, state=InstanceState.BACKOFF,
                                   next_start_at=clock.now(), last_exit_code=2)
    return task, run


def test_a_services_page_shows_its_instances_and_buttons_and_no_run_now(root_client, clock):
    _, run = with_instances(clock)
    page = root_client.get("/admin/tasks_app/task/web/change/").content.decode()
    assert 'data-live-fragment="instances:web"' in page and "td-badge-degraded" in page
    assert "4242" in page and f"/admin/tasks_app/run/{run.pk}/change/" in page and "exit code 2" in page
    assert page.count('class="button td-service-') == 3 and "td-run-now" not in page
    listed = root_client.get("/admin/tasks_app/task/").content.decode()
    assert "td-badge-degraded" in listed  # the list shows the service's roll-up state


def test_the_live_endpoint_sends_a_services_instances(root_client, clock):
    with_instances(clock)
    fragments = root_client.get("/admin/tasks_app/task/live/?keys=web&history=1").json()["fragments"]
    assert "4242" in fragments["instances:web"] and "td-badge-degraded" in fragments["status:web"]


def test_the_buttons_ask_the_supervisor_and_need_the_run_permission(root_client, clock):
    with_instances(clock)
    response = root_client.post("/admin/tasks_app/task/web/service/stop/", follow=True)
    assert "Web: stop requested" in response.content.decode()  # the admin capitalises its messages
    assert not ServiceInstance.objects.filter(wanted=True).exists()
    root_client.post("/admin/tasks_app/task/web/service/restart/")
    assert set(ServiceInstance.objects.values_list("wanted", "restart_requested")) == {(True, 1)}
    assert root_client.get("/admin/tasks_app/task/web/service/stop/").status_code == 403  # a GET changes nothing
    viewer = staff_client("view_task", username="viewer")
    assert viewer.post("/admin/tasks_app/task/web/service/start/").status_code == 403
    assert 'class="button td-service-' not in viewer.get("/admin/tasks_app/task/web/change/").content.decode()
    runner = staff_client("view_task", "run_task", username="runner")
    assert runner.post("/admin/tasks_app/task/web/service/start/").status_code == 302
    assert set(ServiceInstance.objects.values_list("start_requested", flat=True)) == {1}


def test_other_kinds_have_no_instances_and_no_service_buttons(root_client):
    make_task(id="report")
    assert "td-instances-panel" not in root_client.get("/admin/tasks_app/task/report/change/").content.decode()
    response = root_client.post("/admin/tasks_app/task/report/service/start/", follow=True)
    assert "only services start, stop and restart" in response.content.decode()
