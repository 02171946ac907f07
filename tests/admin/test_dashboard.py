"""tasks_app/admin/dashboard.py: running and queued runs, failures in 24 h, process health."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tasks_app.models import Heartbeat, RunStatus

from ..factories import make_run, make_task
from .conftest import staff_client

pytestmark = pytest.mark.django_db


def test_the_admin_index_shows_what_runs_waits_and_failed_and_who_is_alive(root_client, clock):
    task = make_task(id="scan", title="Scan library")
    make_run(task, status=RunStatus.RUNNING, started_at=clock.now(), progress_current=3, progress_total=4)
    make_run(task)
    make_run(task)
    make_run(task, end_reason="failed", error="disk on fire")
    make_run(task, end_reason="failed", error="too old", created_at=clock.now() - timedelta(hours=25))
    Heartbeat.objects.create(role="worker", host="box", pid=1, seen_at=clock.now())
    Heartbeat.objects.create(role="scheduler", host="box", pid=2, seen_at=clock.now() - timedelta(hours=2))

    page = root_client.get("/admin/").content.decode()

    assert 'data-live-src="/admin/tasks_app/run/dashboard/live/"' in page
    counts = re.findall(r'<span class="td-card-number">(\d+)</span> ([\w ]+)</div>', page)
    assert counts == [("1", "running"), ("2", "queued"), ("1", "failed in 24 h")]
    health = [" ".join(re.sub("<[^>]+>", " ", card).split()) for card in re.findall(r'<div class="td-card[^"]*">(workers.*?|scheduler.*?)</div>', page)]
    assert health == ["workers alive", "scheduler not running"]
    assert "75%" in page and "disk on fire" in page and "too old" not in page
    assert "box:2" in page and "silent" in page  # the stale scheduler is listed as silent


def test_the_dashboard_is_live_and_only_for_users_who_may_see_runs(root_client):
    body = root_client.get("/admin/tasks_app/run/dashboard/live/").json()
    assert "Nothing is running." in body["fragments"]["dashboard"]

    no_runs = staff_client("view_task")
    assert "td-dashboard" not in no_runs.get("/admin/").content.decode()
    assert no_runs.get("/admin/tasks_app/run/dashboard/live/").status_code == 403
    assert "td-dashboard" in staff_client("view_run", username="runs").get("/admin/").content.decode()


def test_the_dashboard_says_what_was_started_again_after_dying(root_client, clock):
    Heartbeat.objects.create(role="serve", host="box", pid=3, seen_at=clock.now(),
                             details={"restarts": {"web": 0, "worker": 2, "scheduler": 1}})
    Heartbeat.objects.create(role="worker", host="box", pid=4, seen_at=clock.now(), details={"restarts": {"cluster": 1}})

    page = root_client.get("/admin/").content.decode()

    assert "Started again after dying: cluster 1×, scheduler 1×, worker 2×" in page
    assert "refuses writes" not in page  # the database took the health check's write
