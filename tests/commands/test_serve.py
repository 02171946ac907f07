"""`manage.py serve`: web + worker + scheduler start together and stop together, nothing lost."""
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import requests

from ..conftest import wait_until
from ..processes import Project, alive, copy_database, descendants, free_port, hard_kill


@pytest.fixture(scope="module")
def template_database(tmp_path_factory, process_env) -> Path:
    path = tmp_path_factory.mktemp("serve") / "template.sqlite3"
    Project(path, process_env).manage("migrate", "--noinput", "-v0")
    return path


DEFINITIONS = """
[tasks.stubborn]
kind = "python"
callable = "tests.sample_tasks.stubborn"
title = "Never checks for cancellation"
parameters = [{ key = "seconds", type = "number", default = 60 }]

[tasks.every_minute]
kind = "python"
callable = "tests.sample_tasks.noop"
cron_string = "* * * * *"

[tasks.obedient]
kind = "command"
command = 'echo $$ > "$TASKDECK_DATA_DIR/pids-$TASKDECK_RUN_ID"; exec sleep 300'

[tasks.deaf]
kind = "command"
title = "Ignores SIGTERM, and so does the child it starts"
command = '''trap "" TERM; echo $$ > "$TASKDECK_DATA_DIR/pids-$TASKDECK_RUN_ID"
(trap "" TERM; sleep 300) & echo $! >> "$TASKDECK_DATA_DIR/pids-$TASKDECK_RUN_ID"; sleep 300'''
graceful_stop = 60

[tasks.on_boot]
kind = "python"
callable = "tests.sample_tasks.fail"
run_on_start = true
retry_attempts = 1
retry_delay = 0
"""


@pytest.fixture
def project(template_database, tmp_path, process_env) -> Project:
    definitions = tmp_path / "taskdeck.toml"
    definitions.write_text(DEFINITIONS)
    env = {**process_env, "TASKDECK_DEFINITIONS": str(definitions)}
    return Project(copy_database(template_database, tmp_path / "db.sqlite3"), env)


def wait_status(project: Project, run_id: str, status: str, timeout: float = 20) -> dict[str, str]:
    def reached():
        shown = project.show(run_id)
        return shown if shown["Status"].startswith(status) else None
    return wait_until(reached, timeout=timeout, interval=0.2, what=f"run {run_id} to be {status}")


def test_serve_serves_the_admin_and_runs_tasks_then_stops_everything_on_sigterm(project, tmp_path):
    port = free_port()
    serve = project.start_serve(port, tmp_path / "serve.log")
    # web, scheduler, the worker with its sentinel, pusher, monitor and 2 workers
    children = wait_until(lambda: found if len(found := descendants(serve.pid)) >= 8 else None,
                          what="every process of the stack")
    assert requests.get(f"http://127.0.0.1:{port}/static/admin/css/base.css", timeout=5).status_code == 200
    result = project.manage("tasks", "run", "scan_library", "--param", "platforms=gba", "--param", "pace=0", "--wait")
    # stdout: the run id, then the run's output; stderr: its progress, then its end.
    run_id, output = result.stdout.split("\n", 1)
    assert re.fullmatch(r"[0-9:]{8} INFO Scanning [0-9]+ files on gba\n", output), output
    assert result.stderr.splitlines()[-1].startswith(f"Run {run_id} completed (success) in ")
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(15) == 0
    wait_until(lambda: not any(alive(pid) for pid in children), timeout=5, what="no orphan processes")


def test_a_graceful_stop_ends_running_runs_as_shutdown(project, tmp_path):
    serve = project.start_serve(free_port(), tmp_path / "serve.log")
    run_id = project.manage("tasks", "run", "scan_library", "--param", "pace=0.5").stdout.strip()
    wait_status(project, run_id, "running")
    serve.send_signal(signal.SIGINT)  # Ctrl-C
    assert serve.wait(15) == 0
    shown = project.show(run_id)
    assert shown["Status"] == "failed (shutdown)"


def test_a_graceful_stop_does_not_wait_for_a_run_that_ignores_it(project, tmp_path):
    serve = project.start_serve(free_port(), tmp_path / "serve.log")
    children = descendants(serve.pid)
    run_id = project.manage("tasks", "run", "stubborn").stdout.strip()  # from the definitions file
    wait_status(project, run_id, "running")
    started = time.monotonic()
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(20) == 0
    assert time.monotonic() - started < 10
    assert project.show(run_id)["Status"] == "failed (shutdown)"
    wait_until(lambda: not any(alive(pid) for pid in children), timeout=5, what="no orphan processes")


def command_pids(project: Project, run_id: str, count: int) -> list[int]:
    """The pids a command run of the definitions above wrote, once it wrote ``count`` of them."""
    path = Path(project.env["TASKDECK_DATA_DIR"]) / f"pids-{run_id}"
    lines = wait_until(lambda: path.exists() and len(found := path.read_text().split()) >= count and found,
                       what=f"run {run_id} to write {count} pids")
    return [int(line) for line in lines]


def test_a_graceful_stop_stops_command_runs_and_kills_what_ignores_it(project, tmp_path):
    serve = project.start_serve(free_port(), tmp_path / "serve.log")
    obedient = project.manage("tasks", "run", "obedient").stdout.strip()
    deaf = project.manage("tasks", "run", "deaf").stdout.strip()
    processes = command_pids(project, obedient, 1) + command_pids(project, deaf, 2)
    started = time.monotonic()
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(20) == 0
    assert time.monotonic() - started < 15  # serve's grace (5 s), not the task's graceful_stop (60 s)
    assert project.show(obedient)["Status"] == project.show(deaf)["Status"] == "failed (shutdown)"
    wait_until(lambda: not any(alive(pid) for pid in processes), timeout=5, what="no process of either command")


def test_after_a_hard_stop_a_commands_leftovers_are_killed_when_serve_starts_again(project, tmp_path):
    log = tmp_path / "serve.log"
    serve = project.start_serve(free_port(), log)
    run_id = project.manage("tasks", "run", "deaf").stdout.strip()
    leader, grandchild = command_pids(project, run_id, 2)
    # Every process below serve but the two, the worker's keeper among them (and the leader's own
    # `sleep`, so the leader ends): stopped first, so none sees another die and acts, then killed.
    taskdeck = descendants(serve.pid) - {leader, grandchild} | {serve.pid}
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in taskdeck:
            os.kill(pid, sig)
    serve.wait(5)
    wait_until(lambda: not alive(leader), timeout=5, what="the leader to end")
    assert alive(grandchild)  # nothing of Taskdeck was left to kill it
    serve = project.start_serve(free_port(), log)
    try:
        assert project.show(run_id)["Status"] == "failed (crashed)"
        wait_until(lambda: not alive(grandchild), timeout=5, what="the grandchild to be killed")
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(15)


def test_after_a_hard_stop_running_runs_end_crashed_and_queued_runs_still_execute(project, tmp_path):
    log = tmp_path / "serve.log"
    serve = project.start_serve(free_port(), log)
    running = project.manage("tasks", "run", "scan_library", "--param", "pace=0.5").stdout.strip()
    wait_status(project, running, "running")
    hard_kill(serve.pid)
    serve.wait(5)
    queued = project.manage("tasks", "run", "evaluate_rules").stdout.strip()
    taken = project.manage("tasks", "run", "cleanup_orphaned_resources").stdout.strip()
    with sqlite3.connect(project.database) as db:  # as if a cluster had taken this one's message, then died
        db.execute("delete from django_q_ormq where id = (select max(id) from django_q_ormq)")
    assert project.show(queued)["Status"] == "queued" and project.show(taken)["Status"] == "queued"
    assert project.show(running)["Status"] == "running"

    serve = project.start_serve(free_port(), log)
    try:
        assert project.show(running)["Status"] == "failed (crashed)"
        # Each look is a manage.py process and the restart rebuilds the queue first: generous on
        # a loaded 2-core machine (one full-suite run timed out at 20 s).
        wait_status(project, queued, "completed", timeout=45)
        wait_status(project, taken, "completed", timeout=45)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(15)
    assert "Ended 1 run(s) left running by a previous stop (crashed)." in log.read_text()


def test_the_web_process_does_not_leak_connections_or_files(project, tmp_path):
    port = free_port()
    serve = project.start_serve(port, tmp_path / "serve.log")
    try:
        key = project.manage("create_api_key", "--name", "leak", "--scopes", "tasks:manage").stdout.strip().splitlines()[-1]
        [web] = [pid for pid in descendants(serve.pid) if b"uvicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        session = requests.Session()
        for index in range(300):
            path = "/api/tasks/evaluate_rules/enabled" if index % 2 else "/api/tasks"
            method = session.put if index % 2 else session.get
            response = method(f"http://127.0.0.1:{port}{path}", json={"enabled": True}, headers={"X-API-Key": key}, timeout=10)
            assert response.status_code == 200
        open_files = len(list(Path(f"/proc/{web}/fd").iterdir()))
        assert open_files < 60, f"{open_files} descriptors open after 300 requests"
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(15)


def test_the_scheduler_process_fires_start_up_runs_retries_and_ticks_missed_while_stopped(project, tmp_path):
    """Real processes: a cron tick that came while nothing ran is caught up when serve starts, a
    run_on_start task fires, fails and is retried once."""
    project.manage("tasks", "sync")
    database = sqlite3.connect(project.database)
    with database:
        database.execute("UPDATE tasks_app_task SET next_run_at = datetime('now', '-5 minutes') WHERE id = 'every_minute'")
    serve = project.start_serve(free_port(), tmp_path / "serve.log")

    def runs(task_id: str) -> list[tuple[str, str, str, int]]:
        return database.execute(
            "SELECT trigger, status, end_reason, attempt FROM tasks_app_run WHERE task_id = ? ORDER BY created_at",
            (task_id,)).fetchall()

    wait_until(lambda: len(runs("on_boot")) == 2 and runs("on_boot")[1][1] == "failed", timeout=30,
               what="the start-up run and its retry to fail")
    assert runs("on_boot") == [("startup", "failed", "failed", 1), ("retry", "failed", "failed", 2)]
    wait_until(lambda: any(run[:2] == ("catch_up", "completed") for run in runs("every_minute")), timeout=30,
               what="the missed tick to be caught up")
    assert ("catch_up", "skipped", "missed", 1) in runs("every_minute")
    [(next_run_at,)] = database.execute("SELECT next_run_at FROM tasks_app_task WHERE id = 'every_minute'").fetchall()
    assert next_run_at > database.execute("SELECT datetime('now')").fetchone()[0]
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(15) == 0
