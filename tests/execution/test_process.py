"""execution/process.py through a real qcluster worker: command runs as real process groups, their
argv and environment, how they end, how they stop, and their output in the run's log."""
import grp
import os
import pwd
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app import services
from tasks_app.definitions.process import check_process
from tasks_app.execution.entry import execute_run
from tasks_app.models import EndReason, Event, LogOnFull, Run, RunStatus, Task, TaskKind

from ..conftest import run_until_ended, wait_until
from ..factories import log_of, make_run, make_task
from .conftest import pid_alive, trigger

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("qcluster")]


def command_task(*, parameters: Any = (), timeout: int = 60, **process: Any) -> Task:
    """A command task whose process settings went through the loader's check."""
    return make_task(kind=TaskKind.COMMAND, callable="", timeout=timeout, parameters=list(parameters),
                     process=check_process("test", process))


def log_text(run: Run) -> str:
    return log_of(run)[1].decode()


def running(run: Run) -> Run:
    return wait_until(lambda: Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, pid__isnull=False).first(),
                      what=f"run {run.pk} to start its process")


def pids_in(path: Path, count: int) -> list[int]:
    """The pids a command wrote to ``path``, one per line, once all ``count`` are there."""
    lines = wait_until(lambda: path.exists() and len(path.read_text().split()) >= count and path.read_text().split(),
                       what=f"{count} pids in {path.name}")
    return [int(line) for line in lines]


def test_parameter_values_reach_the_command_as_separate_items_never_as_shell_text(tmp_path):
    hostile = 'a b; touch {0}/pwned $(touch {0}/pwned2) `touch {0}/pwned3` "q" \'s\' * \n| &'.format(tmp_path)
    task = command_task(
        command='for item in "$@"; do printf "[%s]\\n" "$item"; done; printf "env=[%s]\\n" "$NOTE"',
        parameters=[{"key": "name", "type": "string", "kind": "arg"},
                    {"key": "--label", "type": "string", "kind": "option"},
                    {"key": "verbose", "type": "boolean", "kind": "flag"},
                    {"key": "NOTE", "type": "string", "kind": "env"}])
    run = run_until_ended(trigger(task, parameters={"name": hostile, "--label": "$HOME", "verbose": True,
                                                    "NOTE": hostile}))
    assert (run.status, run.end_reason, run.exit_code, run.exit_signal) == (RunStatus.COMPLETED, EndReason.SUCCESS, 0, None)
    assert log_text(run) == f"[{hostile}]\n[--label]\n[$HOME]\n[--verbose]\nenv=[{hostile}]\n"
    assert sorted(os.listdir(tmp_path)) == []


def test_argv_runs_without_a_shell_with_taskdeck_variables_and_env_in_api_order(tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("FROM_FILE=file\nBOTH=file\n")
    task = command_task(argv=["/usr/bin/env"], env={"BOTH": "inline", "INLINE": "x y"}, env_file=str(env_file),
                        working_dir=str(tmp_path))
    run = run_until_ended(trigger(task))
    env = dict(line.split("=", 1) for line in log_text(run).splitlines())
    assert run.end_reason == EndReason.SUCCESS
    assert env["FROM_FILE"] == "file" and env["BOTH"] == "inline" and env["INLINE"] == "x y"
    assert (env["TASKDECK_RUN_ID"], env["TASKDECK_TASK_ID"], env["TASKDECK_ATTEMPT"]) == (str(run.id), task.id, "1")


def test_the_working_dir_and_the_pid_land_where_the_task_says(tmp_path):
    run = run_until_ended(trigger(command_task(command="pwd; echo $$", working_dir=str(tmp_path))))
    directory, pid = log_text(run).split()
    assert directory == str(tmp_path) and run.pid == int(pid)


def test_a_short_command_costs_the_statements_of_a_python_no_op_its_pid_written_with_its_end():
    """Run in this process, not queued: a command ending within RECORD_PID_AFTER has no write of its own."""
    statements, ended = {}, {}
    for task in (command_task(argv=["true"]), make_task()):
        run = make_run(task)
        with CaptureQueriesContext(connection) as queries:
            execute_run(run.id, task.id)
        statements[task.kind], ended[task.kind] = len(queries), Run.objects.get(pk=run.pk)
    assert statements[TaskKind.COMMAND] == statements[TaskKind.PYTHON]
    command, noop = ended[TaskKind.COMMAND], ended[TaskKind.PYTHON]
    assert (command.end_reason, command.exit_code, noop.end_reason, noop.pid) == (
        EndReason.SUCCESS, 0, EndReason.SUCCESS, None)
    assert command.pid


def test_a_long_command_has_its_pid_written_while_it_runs(tmp_path):
    run = running(trigger(command_task(command=f"echo $$ > {tmp_path / 'pid'}; exec sleep 300")))
    assert run.pid == pids_in(tmp_path / "pid", 1)[0] and run.ended_at is None
    services.cancel_run(run.id)
    assert run_until_ended(run).end_reason == EndReason.CANCELLED


def test_queued_command_runs_end_with_their_pids_as_their_worker_keeps_the_slot():
    """A ``queue`` task's run ends through finish_and_claim_next, which takes the next one."""
    task = command_task(argv=["true"])
    Task.objects.filter(pk=task.pk).update(on_overlap="queue", queue_max=5)
    runs = [run_until_ended(run) for run in [trigger(task) for _ in range(3)]]
    assert [(run.end_reason, bool(run.pid)) for run in runs] == [(EndReason.SUCCESS, True)] * 3


def test_exit_codes_decide_the_end():
    failed = run_until_ended(trigger(command_task(command="exit 3")))
    assert (failed.status, failed.end_reason, failed.exit_code, failed.error) == (
        RunStatus.FAILED, EndReason.FAILED, 3, "exit code 3")
    assert Event.objects.filter(run_id=failed.id, name="task:error").exists()
    allowed = run_until_ended(trigger(command_task(command="exit 3", exit_codes=[0, 3])))
    assert (allowed.status, allowed.exit_code, allowed.error) == (RunStatus.COMPLETED, 3, "")


def test_a_process_ended_by_a_signal_names_it_and_has_no_exit_code():
    run = run_until_ended(trigger(command_task(argv=["/bin/sh", "-c", "kill -USR1 $$"])))
    assert (run.end_reason, run.exit_code, run.exit_signal, run.error) == (
        EndReason.FAILED, None, "SIGUSR1", "killed by signal SIGUSR1")


def test_stdout_and_stderr_interleave_in_arrival_order_and_bytes_stay_as_written():
    run = run_until_ended(trigger(command_task(
        command="echo one; sleep 0.05; echo two >&2; sleep 0.05; echo three; printf '\\377\\376\\000end'")))
    assert log_of(run)[1] == b"one\ntwo\nthree\n\xff\xfe\x00end"


def test_a_program_that_cannot_start_fails_the_run_with_one_line_and_the_worker_goes_on(tmp_path):
    missing = run_until_ended(trigger(command_task(argv=[str(tmp_path / "no-such-program")])))
    assert (missing.end_reason, missing.pid) == (EndReason.FAILED, None)
    assert missing.error == f"Could not start {str(tmp_path / 'no-such-program')!r}: No such file or directory."
    gone = tmp_path / "gone"
    gone.mkdir()
    task = command_task(command="true", working_dir=str(gone))
    gone.rmdir()
    moved = run_until_ended(trigger(task))
    assert moved.error == f"working_dir {str(gone)!r} is not a directory on this worker."
    assert run_until_ended(trigger(command_task(command="true"))).end_reason == EndReason.SUCCESS


def test_a_cancel_stops_the_whole_group_even_a_grandchild_ignoring_sigterm(tmp_path):
    pids = tmp_path / "pids"
    task = command_task(graceful_stop=1, command=(
        f"trap '' TERM; echo $$ > {pids}; (trap '' TERM; sleep 300; echo survived) & echo $! >> {pids}; "
        "sleep 300; echo survived"))
    run = running(trigger(task))
    leader, grandchild = pids_in(pids, 2)
    asked = time.monotonic()
    services.cancel_run(run.id)
    run = run_until_ended(run)
    assert (run.status, run.end_reason, run.exit_signal, run.exit_code) == (
        RunStatus.CANCELLED, EndReason.CANCELLED, "SIGKILL", None)
    assert 1 <= time.monotonic() - asked < 10
    assert not pid_alive(leader) and not pid_alive(grandchild)
    assert "survived" not in log_text(run)


def test_a_command_that_obeys_its_stop_signal_ends_promptly_with_it():
    task = command_task(command="echo started; exec sleep 300", stop_signal="SIGINT", graceful_stop=30)
    run = running(trigger(task))
    wait_until(lambda: log_text(run), what="its first output")
    asked = time.monotonic()
    services.cancel_run(run.id)
    run = run_until_ended(run)
    assert (run.end_reason, run.exit_signal) == (EndReason.CANCELLED, "SIGINT")
    assert time.monotonic() - asked < 5


def test_a_background_child_left_behind_is_killed_when_the_leader_exits(tmp_path):
    pids = tmp_path / "pids"
    run = run_until_ended(trigger(command_task(command=f"sleep 300 & echo $! > {pids}; echo done")))
    [child] = pids_in(pids, 1)
    assert run.end_reason == EndReason.SUCCESS and log_text(run) == "done\n"
    wait_until(lambda: not pid_alive(child), timeout=5, what="the background child to be killed")


def test_a_timeout_stops_the_group_gracefully_and_the_worker_lives_on():
    task = command_task(command="trap 'echo got TERM; exit 7' TERM; echo waiting; sleep 300 & wait", timeout=1,
                        graceful_stop=5)
    run = run_until_ended(trigger(task))
    assert (run.status, run.end_reason, run.exit_code, run.error) == (
        RunStatus.FAILED, EndReason.TIMEOUT, 7, "Timed out after 1 s.")
    assert log_text(run) == "waiting\ngot TERM\n"
    worker = run.worker_pid
    assert pid_alive(worker)
    assert run_until_ended(trigger(command_task(command="true"))).end_reason == EndReason.SUCCESS


def test_a_worker_killed_mid_run_leaves_no_process_of_the_command_and_the_run_ends_crashed(tmp_path):
    pids = tmp_path / "pids"
    task = command_task(command=f"echo $$ > {pids}; (sleep 300) & echo $! >> {pids}; sleep 300")
    run = running(trigger(task))
    leader, grandchild = pids_in(pids, 2)
    os.kill(run.worker_pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(run.worker_pid), what="the worker to die")
    wait_until(lambda: not pid_alive(leader) and not pid_alive(grandchild), timeout=5,
               what="the whole group to die with its worker (its keeper kills it)")
    [reaped] = services.reap_lost_runs()
    assert reaped.pk == run.pk
    run.refresh_from_db()
    assert (run.status, run.end_reason, run.exit_code, run.exit_signal) == (
        RunStatus.FAILED, EndReason.CRASHED, None, None)


LOTS = "i=0; while [ $i -lt 3000 ]; do printf '%01023d\\n' $i; i=$((i+1)); done"  # 3,000 lines of 1 KiB


def test_drop_old_keeps_the_newest_bytes_with_a_marker_where_the_rest_was():
    run = run_until_ended(trigger(command_task(command=LOTS, log_max_size=100_000, log_on_full=LogOnFull.DROP_OLD)))
    dropped, data, size = log_of(run)
    assert run.end_reason == EndReason.SUCCESS and size == 3000 * 1024
    assert dropped == size - 100_000 and len(data) == 100_000 and data.endswith(b"%01023d\n" % 2999)


def test_drop_new_keeps_the_first_bytes_and_counts_what_it_discarded():
    run = run_until_ended(trigger(command_task(command=LOTS, log_max_size=100_000, log_on_full=LogOnFull.DROP_NEW)))
    dropped, data, _ = log_of(run)
    assert run.end_reason == EndReason.SUCCESS and dropped == 0
    assert data.startswith(b"%01023d\n" % 0) and data[:100_000].endswith(b"%01023d\n" % 96 + b"0" * 672)
    assert b"[taskdeck: " in data[100_000:] and f"{3000 * 1024 - 100_000:,} bytes dropped".encode() in data


def test_kill_task_stops_the_command_and_ends_the_run_log_overflow(tmp_path):
    pids = tmp_path / "pids"
    command = f"echo $$ > {pids}; while true; do printf '%01023d\\n' 1; done"
    run = run_until_ended(trigger(command_task(command=command, log_max_size=100_000, log_on_full=LogOnFull.KILL_TASK)))
    [leader] = pids_in(pids, 1)
    assert (run.status, run.end_reason) == (RunStatus.FAILED, EndReason.LOG_OVERFLOW)
    assert "log_max_size (100,000 bytes)" in run.error and run.exit_signal == "SIGTERM"
    assert not pid_alive(leader)
    assert log_of(run)[1].startswith(b"%01023d\n" % 1) and b"[taskdeck: " in log_of(run)[1]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root (CI runs as root)")
def test_user_and_umask_apply_to_the_command():
    shared = Path(tempfile.mkdtemp(prefix="taskdeck-nobody-"))  # pytest's own folders are root's alone
    shared.chmod(0o777)
    made = shared / "made"
    run = run_until_ended(trigger(command_task(command=f"id -un; id -gn; id -G; umask; touch {made}", user="nobody",
                                               umask="027")))
    name, group, groups, umask = log_text(run).split("\n")[:4]
    assert run.end_reason == EndReason.SUCCESS, run.error
    nobody = pwd.getpwnam("nobody")
    assert (name, group) == ("nobody", grp.getgrgid(nobody.pw_gid).gr_name)
    assert groups.split() == [str(nobody.pw_gid)] and umask == "0027"
    assert made.stat().st_uid == nobody.pw_uid and made.stat().st_mode & 0o777 == 0o640
    shutil.rmtree(shared)


def test_overlap_terminate_stops_the_running_command_for_the_new_run(tmp_path):
    task = command_task(command=f"echo $$ >> {tmp_path / 'pids'}; exec sleep 300", graceful_stop=30)
    Task.objects.filter(pk=task.pk).update(on_overlap="terminate")
    first = running(trigger(task))
    [leader] = pids_in(tmp_path / "pids", 1)
    second = trigger(task)
    first = run_until_ended(first)
    assert (first.end_reason, first.exit_signal) == (EndReason.TERMINATED, "SIGTERM") and not pid_alive(leader)
    assert running(second).pid != leader
    services.cancel_run(second.id)
    assert run_until_ended(second).end_reason == EndReason.CANCELLED
