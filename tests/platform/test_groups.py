"""tasks_app/platform/groups.py with real processes: signals that reach grandchildren and
SIGTERM-ignoring commands, a group that dies with the worker that started it, user and umask."""
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


def test_the_whole_group_dies_with_its_worker(tmp_path):
    """SIGKILL to the worker: no handler of its own runs, its keeper kills the group it left."""
    pid_file = tmp_path / "grandchild.pid"
    worker = start_worker(f"""
        process = groups.spawn(["/bin/sh", "-c", 'sleep 300 & echo $! > "$1"; sleep 300', "sh", {str(pid_file)!r}],
                               env=os.environ)
        print(process.pid, flush=True)
        time.sleep(300)
    """)
    leader = int(worker.stdout.readline())
    grandchild = read_pid(pid_file)

    worker.kill()
    worker.wait()

    wait_until(lambda: not groups.group_exists(leader), what="the group to die with its worker")
    assert not alive(leader) and not alive(grandchild)


def test_kill_group_ends_what_an_exited_leader_left_in_its_group():
    process = groups.spawn(["/bin/sh", "-c", "sleep 300 & echo $!"], env=os.environ)
    grandchild = int(process.stdout.readline())
    process.stdout.close()
    process.wait()

    assert alive(grandchild) and groups.group_exists(process.pid)
    assert groups.kill_group(process.pid)
    wait_until(lambda: not groups.group_exists(process.pid), what="the rest of the group to be killed")
    assert not alive(grandchild) and not groups.kill_group(process.pid)


def start_worker(code: str) -> subprocess.Popen[str]:
    """A python process running ``code`` (os, time and groups imported), its stdout a pipe."""
    code = "import os, signal, subprocess, sys, time\nfrom tasks_app.platform import groups, keeper\n" + \
        textwrap.dedent(code)
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"})


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
