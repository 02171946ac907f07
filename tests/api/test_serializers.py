"""Output serializers: the hand-written Task and Run renderings stay equal to DRF's own."""
from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework import serializers

from tasks_app.api.serializers import RunSerializer, TaskSerializer
from tasks_app.definitions.process import check_process
from tasks_app.definitions.watcher import check_watcher
from tasks_app.models import (
    EndReason,
    InstanceState,
    IntervalUnit,
    Run,
    ServiceInstance,
    StopRequest,
    TaskKind,
    Watcher,
    WatcherState,
)
from tests.factories import make_run, make_service, make_task, number, string

pytestmark = pytest.mark.django_db


def test_run_rendering_equals_drf_field_by_field(clock) -> None:
    task = make_task(title="Scan <library>")
    first = make_run(task, end_reason=EndReason.FAILED, error="boom", exit_code=3, result={"n": [1, 2]})
    runs = [
        make_run(task),  # queued
        make_run(task, status="running", started_at=clock.now(), progress_current=3, progress_total=7,
                 progress_message="gba", stop_requested=StopRequest.CANCEL, parameters={"platforms": "gba"}),
        first,
        make_run(task, end_reason=EndReason.SUCCESS, attempt=2, retry_of=first, dry_run=True, instance_index=1,
                 summary={"items": 2, "actions": {"keep": 2}}, items_processed=2, items_affected=1,
                 enqueued_at=clock.now() + timedelta(microseconds=5), progress_current=2.5),
        make_run(task, end_reason=EndReason.MISSED, triggered_by="schedule", result=None),
        make_run(task, end_reason=EndReason.FAILED, exit_signal="SIGKILL", pid=31337, error="killed by SIGKILL"),
    ]
    clock.advance(seconds=90)
    for run in Run.objects.filter(pk__in=[run.pk for run in runs]).select_related("task"):
        serializer = RunSerializer(run)
        assert serializer.data == serializers.ModelSerializer.to_representation(serializer, run), run.status


def test_task_rendering_equals_drf_field_by_field(clock) -> None:
    tasks = [
        make_task(),
        make_task(cron_string="0 3 * * *", timezone="Europe/Paris", next_run_at=clock.now(), type="scan",
                  parameters=[string("platforms", choices=["gba", "n64"], required=False), number("limit", 5)]),
        make_task(interval=6, interval_unit=IntervalUnit.HOURS, default_interval=6, supports_dry_run=True,
                  last_run_at=clock.now(), enabled=False, manual_run=False, timeout=None),
        make_task(kind=TaskKind.COMMAND, callable="", process=check_process("backup", {"argv": ["tar", "-c", "/srv"]})),
        make_task(kind=TaskKind.SERVICE, callable="", process={**check_process("web", {"argv": ["httpd"]}), "instances": 2}),
        make_service(process={"command": "redis-server", "instances": 3, "depends_on": ["db"],
                              "health_check": {"command": "redis-cli ping"}}),
        make_task(kind=TaskKind.WATCHER, callable="", manual_run=False,
                  watch=check_watcher("watch", {"paths": ["/srv"], "target": "scan"})),
        make_task(kind=TaskKind.WATCHER, callable="", manual_run=False,
                  watch=check_watcher("watch", {"paths": ["/srv", "/mnt"], "target": "scan", "quiet_delay": 0.5})),
    ]
    Watcher.objects.create(task=tasks[7], state=WatcherState.ERROR, error="/mnt: no such file or folder",
                           paths=[{"path": "/srv", "mode": "inotify", "error": ""},
                                  {"path": "/mnt", "mode": "", "error": "/mnt: no such file or folder"}],
                           last_change_at=clock.now(), last_triggered_at=clock.now(), pending_changes=3,
                           last_run_id=make_run(tasks[0]).pk)
    ServiceInstance.objects.create(task=tasks[4], index=0, wanted=True, state=InstanceState.RUNNING, pid=42,
                                   run=make_run(tasks[4]), started_at=clock.now(), restarts=2, last_exit_code=1)
    ServiceInstance.objects.create(task=tasks[4], index=1, wanted=True, state=InstanceState.BACKOFF,
                                   next_start_at=clock.now())
    make_run(tasks[1], end_reason=EndReason.FAILED)
    make_run(tasks[2])
    for task in tasks:
        serializer = TaskSerializer(task)
        assert serializer.data == serializers.ModelSerializer.to_representation(serializer, task), task.id
    service = TaskSerializer(tasks[4]).data
    assert service["service_state"] == "degraded" and [row["state"] for row in service["instances"]] == [
        "running", "backoff"]
    assert service["instances"][0]["pid"] == 42 and service["instances"][0]["restarts"] == 2
    assert TaskSerializer(tasks[6]).data["watcher"]["state"] == "stopped"  # no supervisor looked at it yet
    watcher = TaskSerializer(tasks[7]).data["watcher"]
    assert (watcher["state"], watcher["pending_changes"], watcher["quiet_delay"]) == ("error", 3, 0.5)
    assert watcher["path_states"][1]["error"] == "/mnt: no such file or folder"
