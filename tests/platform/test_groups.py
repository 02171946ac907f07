"""tasks_app/platform/groups.py with real processes: signals that reach grandchildren and
SIGTERM-ignoring commands, a leader that dies with the worker that started it, user and umask."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tasks_app.platform import groups

from ..conftest import ROOT, wait_until
from ..processes import alive

#: A command that ignores SIGTERM and leaves a grandchild (also ignoring it) in its group; the
#: grandchild's pid lands in the file given as $1.
STUBBORN = 'trap "" TERM; sleep 300 & echo $! > "$1"; while :; do sleep 1; done'


def read_pid(path) -> int:
    wait_until(lambda: path.exists() and path.read_text().strip(), what=f"{path.name} to be written")
    return int(path.read_text())


def test_sigkill_to_the_group_ends_a_command_that_ignores_sigterm_and_its_grandchild(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    process = groups.spawn(["/bin/sh", "-c", STUBBORN, "sh", str(pid_file)], env=os.environ)
    grandchild = read_pid(pid_file)

    assert groups.signal_group(process.pid, signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.3)
    assert groups.signal_group(process.pid, signal.SIGKILL)

    assert process.wait(timeout=10) == -signal.SIGKILL
    # Every member was sent SIGKILL at once, but each one dies on its own time: the loop's
    # `sleep 1` may still be on its way out once the grandchild has gone.
    wait_until(lambda: not groups.group_exists(process.pid), what="every process of the group to be gone")
    assert not alive(grandchild)


def test_a_command_obeys_the_stop_signal_even_from_a_worker_that_ignores_it(tmp_path):
    """Even from a worker that ignores SIGINT (as one started in the background by a shell does):
    the command starts with every stop signal at its default action."""
    pid_file = tmp_path / "grandchild.pid"
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process = groups.spawn(["/bin/sh", "-c", 'sleep 300 & echo $! > "$1"; wait', "sh", str(pid_file)],
                               env=os.environ)
    finally:
        signal.signal(signal.SIGINT, inherited)
    grandchild = read_pid(pid_file)

    groups.signal_group(process.pid, signal.SIGINT)

    assert process.wait(timeout=10) in (-signal.SIGINT, 130)
    groups.signal_group(process.pid, signal.SIGKILL)  # the background sleep ignores SIGINT (POSIX)
    wait_until(lambda: not alive(grandchild), what="the grandchild to be gone")


def test_the_leader_dies_with_its_worker_and_kill_group_ends_what_it_left(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    worker_code = textwrap.dedent(f"""
        import os, sys, time
        from tasks_app.platform import groups
        process = groups.spawn(["/bin/sh", "-c", 'sleep 300 & echo $! > "$1"; sleep 300', "sh", {str(pid_file)!r}],
                               env=os.environ)
        print(process.pid, flush=True)
        time.sleep(300)
    """)
    worker = subprocess.Popen([sys.executable, "-c", worker_code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"})
    leader = int(worker.stdout.readline())
    grandchild = read_pid(pid_file)

    worker.kill()  # SIGKILL: no handler of the worker's runs
    worker.wait()

    wait_until(lambda: not alive(leader), what="the leader to die with its worker")
    assert alive(grandchild) and groups.group_exists(leader)  # the leader's own child is not told
    assert groups.kill_group(leader)
    wait_until(lambda: not groups.group_exists(leader), what="the rest of the group to be killed")
    assert not alive(grandchild) and not groups.kill_group(leader)


def test_output_and_errors_share_one_pipe_in_order():
    process = groups.spawn(["/bin/sh", "-c", "echo one; echo two >&2; echo three"], env=os.environ)
    output, _ = process.communicate(timeout=10)
    assert output == b"one\ntwo\nthree\n" and process.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="starting a process as another user needs root (CI runs as root)")
def test_a_command_runs_as_its_user_with_its_umask(tmp_path):
    process = groups.spawn(["/bin/sh", "-c", "id -un; umask; pwd"], env=os.environ, user="nobody", umask=0o027,
                           working_dir="/tmp")
    output, _ = process.communicate(timeout=10)
    assert output.decode().split() == ["nobody", "0027", "/tmp"]


def test_signal_names_both_ways():
    assert groups.signal_number("SIGTERM") == signal.SIGTERM
    assert groups.signal_name(signal.SIGKILL) == "SIGKILL"
    assert groups.signal_name(200) == "SIG200"
