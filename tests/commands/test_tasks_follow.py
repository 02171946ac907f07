"""`manage.py tasks run --wait` and `tasks log [--follow]` as separate processes, following command
runs that a real qcluster worker runs: the output on stdout byte for byte as it comes, what
Taskdeck says on stderr, the exit statuses, Ctrl-C."""
from __future__ import annotations

import io
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command

from tasks_app.definitions.process import check_process
from tasks_app.models import LogOnFull, Run, RunStatus, Task, TaskKind, dropped_marker

from ..conftest import ROOT, run_until_ended, wait_until
from ..factories import log_of, make_run, make_task, write_log

#: The gate a command waits for (its first argument), so a test decides when it goes on.
WAIT_FOR_GATE = 'while [ ! -e "$1" ]; do sleep 0.05; done'
GATE = [{"key": "gate", "type": "string", "kind": "arg"}]
MARKER = re.compile(rb"\[taskdeck: ([0-9,]+) bytes dropped\]\n")


def command_task(command: str, *, parameters: Any = (), **process: Any) -> Task:
    """A command task whose process settings went through the loader's check."""
    return make_task(kind=TaskKind.COMMAND, callable="", timeout=30, parameters=list(parameters),
                     process=check_process("test", {"command": command, **process}))


class Cli:
    """A `manage.py tasks ...` process whose stdout the test reads while it runs."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "manage.py", "tasks", *args], cwd=ROOT, env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stdout = b""

    def read_until(self, expected: bytes, *, timeout: float = 20) -> bytes:
        """Stdout so far, once it holds ``expected``."""
        fd = self.process.stdout.fileno()

        def arrived() -> bool:
            while select.select([fd], [], [], 0)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self.stdout += chunk
            return expected in self.stdout
        wait_until(arrived, timeout=timeout, what=f"{expected!r} on stdout (so far {self.stdout[-200:]!r})")
        return self.stdout

    def finish(self, *, timeout: float = 30) -> tuple[int, bytes, list[str]]:
        """Exit status, all of stdout, the lines of stderr."""
        rest, stderr = self.process.communicate(timeout=timeout)
        self.stdout += rest
        return self.process.returncode, self.stdout, stderr.decode().splitlines()


@pytest.fixture
def cli(process_env: dict[str, str]) -> Iterator[Any]:
    """Starts `manage.py tasks <args>`; whatever is still running when the test ends is killed."""
    started: list[Cli] = []

    def start(*args: str) -> Cli:
        started.append(Cli(process_env, *args))
        return started[-1]
    yield start
    for each in started:
        if each.process.poll() is None:
            each.process.kill()
            each.process.wait(10)


def ended_run(cli: Any, task: Task) -> Run:
    """A run of ``task`` started by `tasks run` (without --wait), once it has ended."""
    status, stdout, _ = cli("run", task.id).finish()
    assert status == 0, stdout
    return run_until_ended(the_run(stdout))


def the_run(stdout: bytes) -> Run:
    """The run whose id is stdout's first line."""
    return Run.objects.get(pk=stdout.split(b"\n", 1)[0].decode())


def state_lines(lines: list[str], run: Run) -> list[str]:
    """The lines a follower wrote while the run went (stderr is not a terminal: one per change). A
    worker claims a run before it starts its process: a look in between sees no pid yet."""
    assert set(lines) <= {"queued: waiting for a worker", "running: working", f"running: pid {run.pid}"}, lines
    return lines


def end_line(run: Run) -> re.Pattern[str]:
    return re.compile(rf"Run {run.id} {run.status} \({run.end_reason}\) in [0-9]+\.[0-9] s")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("qcluster")
class TestFollowingCommandRuns:
    def test_run_wait_streams_the_commands_bytes_to_stdout_as_written_and_the_state_to_stderr(self, cli, tmp_path):
        task = command_task(
            f"printf 'first line\\n'; {WAIT_FOR_GATE}; printf 'caf\\351 \\377\\376\\000 bytes\\n'; "
            "printf 'to stderr\\n' >&2; sleep 0.3; printf 'no newline at the end'", parameters=GATE)
        gate = tmp_path / "gate"
        following = cli("run", task.id, "--param", f"gate={gate}", "--wait")

        following.read_until(b"\nfirst line\n")
        run = the_run(following.stdout)
        assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING  # streamed, not printed at the end
        gate.touch()
        status, stdout, stderr = following.finish()

        run.refresh_from_db()
        written = b"first line\ncaf\xe9 \xff\xfe\x00 bytes\nto stderr\nno newline at the end"
        assert (status, run.status, log_of(run)[1]) == (0, RunStatus.COMPLETED, written)
        assert stdout == f"{run.id}\n".encode() + written
        assert f"running: pid {run.pid}" in state_lines(stderr[:-1], run)
        assert end_line(run).fullmatch(stderr[-1]), stderr

    def test_run_wait_exits_1_unless_the_run_completes_with_its_end_on_stderr(self, cli):
        task = command_task("printf 'out\\n'; printf 'err\\n' >&2; exit 3")
        status, stdout, stderr = cli("run", task.id, "--wait").finish()
        run = the_run(stdout)
        assert status == 1 and stdout == f"{run.id}\nout\nerr\n".encode()
        state_lines(stderr[:-2], run)
        assert end_line(run).fullmatch(stderr[-2]) and run.end_reason == "failed", stderr
        assert stderr[-1] == f"CommandError: Run {run.id} failed (failed): exit code 3"

    def test_a_head_dropped_while_following_is_one_marker_line_where_the_bytes_were(self, cli, tmp_path):
        task = command_task(f"printf 'start\\n'; {WAIT_FOR_GATE}; head -c 5000 /dev/zero | tr '\\000' x; "
                            "printf '\\nend\\n'", parameters=GATE, log_max_size=1000, log_on_full=LogOnFull.DROP_OLD)
        gate = tmp_path / "gate"
        following = cli("run", task.id, "--param", f"gate={gate}", "--wait")
        following.read_until(b"\nstart\n")
        gate.touch()  # 5,000 bytes at once past a 1,000-byte cap: the follower cannot have read them all
        status, stdout, _ = following.finish()

        written = b"start\n" + b"x" * 5000 + b"\nend\n"
        shown = stdout.split(b"\n", 1)[1]
        # Each marker stands for the bytes it counts; what is around it is the output at those offsets.
        position, markers = 0, 0
        for index, part in enumerate(MARKER.split(shown)):
            if index % 2:
                position += int(part.replace(b",", b""))
                markers += 1
            else:
                assert written[position:position + len(part)] == part
                position += len(part)
        assert (status, position, markers > 0) == (0, len(written), True)
        assert shown.endswith(b"x\nend\n")

    def test_ctrl_c_stops_following_not_the_run_and_log_follow_takes_it_up_again(self, cli, tmp_path):
        task = command_task(f"printf 'before\\n'; {WAIT_FOR_GATE}; printf 'after\\n'", parameters=GATE)
        gate = tmp_path / "gate"
        following = cli("run", task.id, "--param", f"gate={gate}", "--wait")
        following.read_until(b"\nbefore\n")
        following.process.send_signal(signal.SIGINT)
        status, stdout, stderr = following.finish()
        run = the_run(stdout)
        assert status == 130 and stdout == f"{run.id}\nbefore\n".encode()
        assert stderr[-1] == (f"Stopped following run {run.id}; the run goes on. "
                              f"Follow it again: manage.py tasks log {run.id} --follow")
        assert "Traceback" not in "\n".join(stderr)
        assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING

        again = cli("log", str(run.id), "--follow")
        again.read_until(b"before\n")  # from the start of the log
        gate.touch()
        status, stdout, stderr = again.finish()
        run.refresh_from_db()
        assert (status, stdout, run.status) == (0, b"before\nafter\n", RunStatus.COMPLETED)
        assert end_line(run).fullmatch(stderr[-1]), stderr

    def test_log_prints_a_long_log_whole_exactly_as_stored(self, cli):
        lines = "i=0; while [ $i -lt 1500 ]; do printf '%01023d\\n' $i; i=$((i+1)); done; printf '\\377'"
        long = ended_run(cli, command_task(lines, log_max_size=4_000_000))
        capped = ended_run(cli, command_task(lines, log_max_size=100_000, log_on_full=LogOnFull.DROP_OLD))

        status, stdout, stderr = cli("log", str(long.id)).finish()
        assert (status, stderr) == (0, [])
        assert len(stdout) == 1500 * 1024 + 1 and stdout == log_of(long)[1]  # many pages of 256 KiB
        dropped, kept, _ = log_of(capped)
        assert dropped == 1500 * 1024 + 1 - 100_000
        assert cli("log", str(capped.id)).finish()[1] == dropped_marker(dropped) + kept

        reader = cli("log", str(long.id))  # `| head -c 100`: the reader goes away early
        reader.read_until(b"0" * 100)
        reader.process.stdout.close()
        assert reader.process.wait(30) == 1 and reader.process.stderr.read() == b""  # no traceback

    def test_log_follow_of_an_ended_run_prints_it_and_says_how_it_ended(self, cli):
        run = ended_run(cli, command_task("printf 'partial\\n'; exit 4"))
        status, stdout, stderr = cli("log", str(run.id), "--follow").finish()
        assert (status, stdout) == (1, b"partial\n")
        assert end_line(run).fullmatch(stderr[0]) and stderr[1].endswith("failed (failed): exit code 4"), stderr


@pytest.mark.parametrize("run_id", ["0f0f", "6f1c7a57-3f9c-4f2a-9a55-b1e3f0d0c0de"])
def test_log_of_an_unknown_run_is_one_line_and_exit_1(process_env, run_id):
    result = subprocess.run([sys.executable, "manage.py", "tasks", "log", run_id, "--follow"], cwd=ROOT,
                            env=process_env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.strip() == f"CommandError: Run {run_id} does not exist (or was removed by retention)."


@pytest.mark.django_db
def test_log_writes_the_stored_bytes_behind_the_dropped_marker():
    run = write_log(make_run(make_task(id="report"), end_reason="success"), b"caf\xe9\r\n\x00tail", at=1234)
    out = io.TextIOWrapper(io.BytesIO(), write_through=True)
    call_command("tasks", "log", str(run.pk), stdout=out)
    assert out.buffer.getvalue() == b"[taskdeck: 1,234 bytes dropped]\ncaf\xe9\r\n\x00tail"
