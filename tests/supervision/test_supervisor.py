"""supervision/supervisor.py in this process, with real processes and the test clock: instances
started and recorded, the restart policy with its backoff, fatal, operators' stop, start and
restart, and shutdown in reverse dependency order."""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
from django.db import OperationalError

from tasks_app import services
from tasks_app.definitions.process import check_process
from tasks_app.models import EndReason, Event, EventName, InstanceState, Lease, Run, RunStatus, RunTrigger, ServiceInstance, TaskKind
from tasks_app.supervision.supervisor import Supervisor

real_ended = services.instances_ended
real_begin = services.begin_instances

from ..execution.conftest import pid_alive
from ..factories import log_of, make_task

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SERVICE_DEFAULTS = {"instances": 1, "autostart": True, "restart": "on_failure", "restart_backoff": "exponential",
                    "restart_delay": 1, "start_retries": 3, "healthy_after": 10, "depends_on": [], "priority": 0,
                    "health_check": None}


def service(task_id: str | None = None, **fields: Any):
    """A service task with complete settings (as the definitions check leaves them)."""
    process = {name: fields.pop(name) for name in list(fields) if name in SERVICE_DEFAULTS}
    settings = {**check_process("svc", fields), **SERVICE_DEFAULTS, **process}
    extra = {"id": task_id} if task_id else {}
    return make_task(kind=TaskKind.SERVICE, callable="", timeout=None, process=settings, **extra)


@pytest.fixture
def supervisor():
    made = Supervisor(interval=0.2, ttl=30)
    yield made
    made.shutdown()


def turn(supervisor: Supervisor, until, *, what: str, timeout: float = 10):
    """Step the supervisor until ``until()`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        supervisor.step(wait=0.05)
        value = until()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {what}")


def instance(task, index: int = 0) -> ServiceInstance:
    return ServiceInstance.objects.get(task=task, index=index)


def runs(task) -> list[Run]:
    return list(Run.objects.filter(task=task).order_by("created_at"))


def test_an_instance_starts_as_a_run_of_its_own_and_is_running_once_healthy(supervisor, clock):
    task = service(command='echo "instance $TASKDECK_INSTANCE_INDEX up"; exec sleep 300', healthy_after=5,
                   instances=2)
    turn(supervisor, lambda: all(row.pid for row in ServiceInstance.objects.filter(task=task)) and
         ServiceInstance.objects.filter(task=task).count() == 2, what="both instances up")
    first, second = runs(task)
    assert (first.trigger, first.status, first.triggered_by) == (RunTrigger.SUPERVISOR, RunStatus.RUNNING, "supervisor")
    assert sorted([first.instance_index, second.instance_index]) == [0, 1]
    assert instance(task).state == InstanceState.STARTING and pid_alive(instance(task).pid)
    assert first.pid == ServiceInstance.objects.get(run=first).pid
    turn(supervisor, lambda: log_of(first)[1], what="the first output")
    assert log_of(first)[1] == f"instance {first.instance_index} up\n".encode()
    assert set(Lease.objects.values_list("name", flat=True)) == {f"service:{task.id}:0", f"service:{task.id}:1"}

    clock.advance(seconds=5)
    turn(supervisor, lambda: instance(task).state == InstanceState.RUNNING, what="healthy")
    assert Event.objects.filter(name=EventName.SERVICE_UPDATED, task_id=task.id, data__state="running").count() == 2


def test_a_failing_instance_backs_off_then_goes_fatal_until_an_operator_starts_it(supervisor, clock, tmp_path):
    starts = tmp_path / "starts"
    task = service(command=f"echo x >> {starts}; exit 3", restart_delay=2, restart_backoff="exponential",
                   start_retries=3)
    turn(supervisor, lambda: instance(task).state == InstanceState.BACKOFF, what="the first exit")
    [first] = runs(task)
    assert (first.status, first.end_reason, first.exit_code, first.error) == (
        RunStatus.FAILED, EndReason.FAILED, 3, "exit code 3")
    row = instance(task)
    assert row.last_exit_code == 3 and row.next_start_at is not None
    for _ in range(10):  # no start before its delay (2 s) has passed
        supervisor.step(wait=0.02)
    assert len(runs(task)) == 1

    clock.advance(seconds=2)
    turn(supervisor, lambda: len(runs(task)) == 2 and instance(task).state == InstanceState.BACKOFF, what="exit 2")
    assert (instance(task).next_start_at - runs(task)[1].ended_at).total_seconds() == pytest.approx(4, abs=0.5)
    clock.advance(seconds=4)
    turn(supervisor, lambda: instance(task).state == InstanceState.FATAL, what="fatal after 3 exits")
    assert len(runs(task)) == 3 and starts.read_text().count("x") == 3
    clock.advance(seconds=60)
    for _ in range(10):
        supervisor.step(wait=0.02)
    assert len(runs(task)) == 3  # fatal: no more restarts

    services.start_service(task.id)
    turn(supervisor, lambda: len(runs(task)) == 4, what="the operator's start")
    assert instance(task).restarts == 3


def test_restart_policies_decide_after_a_clean_exit(supervisor):
    on_failure = service(command="exit 0", restart="on_failure")
    always = service(command="exit 0", restart="always", restart_delay=0, start_retries=100)
    never = service(command="exit 1", restart="never")
    turn(supervisor, lambda: len(runs(always)) >= 3 and instance(on_failure).state == InstanceState.STOPPED
         and instance(never).state == InstanceState.STOPPED, what="each policy's decision")
    assert len(runs(on_failure)) == 1 and runs(on_failure)[0].end_reason == EndReason.SUCCESS
    assert len(runs(never)) == 1 and runs(never)[0].end_reason == EndReason.FAILED


def test_a_healthy_instance_that_dies_restarts_with_its_streak_reset(supervisor, clock):
    task = service(command="exec sleep 300", healthy_after=1, restart_delay=1, start_retries=1)
    turn(supervisor, lambda: instance(task).pid, what="start")
    clock.advance(seconds=1)
    turn(supervisor, lambda: instance(task).state == InstanceState.RUNNING, what="healthy")
    os.kill(instance(task).pid, signal.SIGKILL)
    turn(supervisor, lambda: instance(task).state == InstanceState.BACKOFF, what="the exit")
    assert runs(task)[0].exit_signal == "SIGKILL"  # one exit with start_retries 1, but it had been healthy
    clock.advance(seconds=1)
    turn(supervisor, lambda: len(runs(task)) == 2 and instance(task).pid, what="the restart")


def test_an_operators_stop_holds_and_start_and_restart_bring_it_back(supervisor):
    task = service(command="trap 'exit 0' TERM; sleep 300 & wait", graceful_stop=5)
    pid = turn(supervisor, lambda: instance(task).pid, what="start")
    services.stop_service(task.id)
    turn(supervisor, lambda: instance(task).state == InstanceState.STOPPED, what="the stop")
    [stopped] = runs(task)
    assert (stopped.status, stopped.end_reason, stopped.error) == (RunStatus.CANCELLED, EndReason.CANCELLED,
                                                                    "Stopped by an operator.")
    assert not pid_alive(pid) and not Lease.objects.exists()
    for _ in range(10):
        supervisor.step(wait=0.02)
    assert len(runs(task)) == 1

    services.start_service(task.id)
    pid = turn(supervisor, lambda: len(runs(task)) == 2 and instance(task).pid, what="the start")
    services.restart_service(task.id)
    turn(supervisor, lambda: len(runs(task)) == 3 and instance(task).pid, what="the restart")
    assert runs(task)[1].error == "Restarted by an operator." and not pid_alive(pid)


def test_shutdown_stops_dependents_first_and_ends_their_runs_shutdown(tmp_path):
    order = tmp_path / "order"
    database = service("database", command=f"trap 'echo database >> {order}; exit 0' TERM; sleep 300 & wait",
                       healthy_after=0)
    web = service("web", command=f"trap 'sleep 0.2; echo web >> {order}; exit 0' TERM; sleep 300 & wait",
                  depends_on=["database"])
    supervisor = Supervisor(interval=0.2, ttl=30)
    turn(supervisor, lambda: instance(database).pid and instance(web).pid, what="both up")
    supervisor.shutdown()
    assert order.read_text().split() == ["web", "database"]
    for task in (database, web):
        [run] = runs(task)
        assert (run.status, run.end_reason) == (RunStatus.FAILED, EndReason.SHUTDOWN)
        assert instance(task).wanted and instance(task).state == InstanceState.STOPPED
    assert not Lease.objects.exists()


def test_instances_due_in_one_look_begin_together_in_priority_order(supervisor, monkeypatch):
    """At boot, 200 instances begun one transaction each took seconds: a look's starts are one
    (spawned in the order begun)."""
    late = service("late", command="exec sleep 300", instances=2, priority=5)
    early = service("early", command="exec sleep 300", priority=1)
    begun = []
    monkeypatch.setattr(services, "begin_instances",
                        lambda starts, **kwargs: begun.append(list(starts)) or real_begin(starts, **kwargs))
    turn(supervisor, lambda: ServiceInstance.objects.filter(pid__isnull=False).count() == 3, what="three up")
    assert begun == [[(early.id, 0, 0), (late.id, 0, 0), (late.id, 1, 0)]]
    assert {run.pid for run in Run.objects.all()} == set(ServiceInstance.objects.values_list("pid", flat=True))


def test_the_ends_of_a_shutdown_level_are_written_together(monkeypatch):
    """200 instances ended one transaction each took seconds to stop: a level's ends are one write."""
    task = service(command="exec sleep 300", instances=3)
    supervisor = Supervisor(interval=0.2, ttl=30)
    turn(supervisor, lambda: ServiceInstance.objects.filter(task=task, pid__isnull=False).count() == 3,
         what="three instances up")
    written = []
    monkeypatch.setattr(services, "instances_ended", lambda ends: written.append(len(ends)) or real_ended(ends))
    supervisor.shutdown()
    assert written == [3]
    assert {run.end_reason for run in runs(task)} == {EndReason.SHUTDOWN}


def test_an_end_the_database_refused_is_written_before_the_instance_starts_again(supervisor, monkeypatch, tmp_path):
    starts = tmp_path / "starts"
    task = service(command=f"echo started >> {starts}; exit 1", restart="always", restart_backoff="constant",
                   restart_delay=0, start_retries=100)
    refusals = []

    def refusing(ends):
        if len(refusals) < 3:
            refusals.append(len(ends))
            raise OperationalError("database is locked")
        return real_ended(ends)

    monkeypatch.setattr(services, "instances_ended", refusing)
    turn(supervisor, lambda: len(refusals) == 3, what="three refused writes")
    assert starts.read_text() == "started\n"  # no second lifetime while the first is not ended
    turn(supervisor, lambda: len(runs(task)) >= 2, what="the next start")
    first, second = runs(task)[:2]
    assert first.status == RunStatus.FAILED and first.ended_at <= second.started_at


def test_a_command_that_cannot_start_counts_as_a_failed_start(supervisor, tmp_path):
    task = service(argv=[str(tmp_path / "missing")], start_retries=1)
    turn(supervisor, lambda: instance(task).state == InstanceState.FATAL, what="fatal")
    [run] = runs(task)
    assert run.end_reason == EndReason.FAILED and "No such file or directory" in run.error


def test_a_health_check_makes_an_instance_healthy_and_restarts_it_after_failures_in_a_row(supervisor, tmp_path):
    flag = tmp_path / "healthy"
    task = service(command="exec sleep 300", healthy_after=1000,
                   health_check={"command": f"test -f {flag}", "interval": 0.1, "timeout": 5, "retries": 2})
    first_pid = turn(supervisor, lambda: instance(task).pid, what="start")
    for _ in range(10):
        supervisor.step(wait=0.05)
    assert instance(task).state == InstanceState.STARTING  # its check keeps failing: not healthy yet
    flag.touch()
    turn(supervisor, lambda: instance(task).state == InstanceState.RUNNING, what="the check to pass")
    flag.unlink()
    turn(supervisor, lambda: len(runs(task)) == 2, what="a restart after 2 failed checks")
    first = runs(task)[0]
    assert first.end_reason == EndReason.FAILED and "health check failed 2 times in a row" in first.error
    assert not pid_alive(first_pid)


def test_an_http_health_check_passes_once_the_server_answers(supervisor):
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = service(argv=["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"], healthy_after=1000,
                   health_check={"http": f"http://127.0.0.1:{port}/", "interval": 0.1, "timeout": 2, "retries": 3})
    turn(supervisor, lambda: instance(task).state == InstanceState.RUNNING, what="the server to answer", timeout=20)


def test_at_boot_a_service_waits_for_what_it_depends_on_to_be_healthy(supervisor, tmp_path):
    flag = tmp_path / "database-ready"
    database = service("database", command="exec sleep 300", healthy_after=3,
                       health_check={"command": f"test -f {flag}", "interval": 0.1, "timeout": 5, "retries": 3})
    web = service("web", command="echo web up; exec sleep 300", depends_on=["database"])
    api = service("api", command="exec sleep 300", depends_on=["database"])
    turn(supervisor, lambda: instance(database).pid, what="the database to start")
    for _ in range(10):
        supervisor.step(wait=0.05)
    assert not runs(web) and not runs(api)
    flag.touch()
    turn(supervisor, lambda: runs(web) and runs(api), what="the dependents once the database is healthy")
    turn(supervisor, lambda: log_of(runs(web)[0])[1] == b"web up\n", what="web's output, with no note")


def test_at_boot_a_service_stops_waiting_after_its_dependencys_healthy_after_plus_5_s(supervisor, clock):
    database = service("database", command="exec sleep 300", healthy_after=3,
                       health_check={"command": "false", "interval": 0.1, "timeout": 5, "retries": 3})
    web = service("web", command="echo web up; exec sleep 300", depends_on=["database"])
    turn(supervisor, lambda: instance(database).pid, what="the database to start")
    clock.advance(seconds=6)  # of the 8 (3 + 5) it waits at most; real time flows too
    for _ in range(10):
        supervisor.step(wait=0.05)
    assert not runs(web)
    clock.advance(seconds=2)
    turn(supervisor, lambda: runs(web), what="web to stop waiting")
    data = turn(supervisor, lambda: (data := log_of(runs(web)[0])[1]).endswith(b"web up\n") and data,
                what="web's output")
    assert data.startswith(b"[taskdeck: started without waiting any longer for database: not healthy within")


def test_an_operators_ask_on_this_host_wakes_the_supervisor_at_once():
    task = service(command="exec sleep 300")
    lazy = Supervisor(interval=1000, ttl=30)  # after its first look, it would not look again for 1000 s
    try:
        turn(lazy, lambda: instance(task).pid, what="start")
        services.stop_service(task.id)
        turn(lazy, lambda: instance(task).state == InstanceState.STOPPED, what="the stop, woken")
    finally:
        lazy.shutdown()


def test_a_stop_wakes_the_loop_at_once_and_it_shuts_down():
    """SIGTERM's handler (or serve's thread) calls stop(): the loop, waiting for its next look in
    1000 s, stops its instances now."""
    task = service(command="exec sleep 300", healthy_after=1000)  # nothing else due either
    lazy = Supervisor(interval=1000, ttl=30)
    turn(lazy, lambda: instance(task).pid, what="start")
    pid = instance(task).pid
    loop = threading.Thread(target=lazy.run_forever)
    loop.start()
    lazy.stop()
    loop.join(timeout=60)
    assert not loop.is_alive() and not pid_alive(pid)
    assert runs(task)[0].end_reason == EndReason.SHUTDOWN
