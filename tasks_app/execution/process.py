"""The executor of command tasks: starts the run's process group, copies its output into the run's
log as it arrives, stops the group when the run is asked to stop, and reports how it ended.

**Starting.** The argv and environment come from ``command_line.build`` (parameters as separate
argv items or environment entries, the secrets file read here, at spawn); the process starts in a
new session and process group (``platform.groups.spawn``), as ``user`` with ``umask`` when the
task says so, and its pid lands on the run at once. "running" was recorded by the claim, before
anything was started. A process that cannot start ends the run ``failed`` with one line naming
why (never a line of an env or secrets file).

**Output.** stdout and stderr share one pipe, so they interleave in arrival order; what the pipe
gives goes, as read (up to ``READ_SIZE`` bytes at a time, no work per line), to the run's
``LogWriter``, which stores it in chunks with the task's cap.

**Stopping.** When the stop event is set (cancel, overlap terminate, shutdown, a ``kill_task``
log cap, or the watchdog's timeout) the group gets ``stop_signal``, and SIGKILL once
``graceful_stop`` seconds have passed with the leader still there; output is still read
meanwhile, so a command that writes on its way out is not blocked on a full pipe. Whenever the
leader has gone (done, or stopped), whatever is left in its group gets SIGKILL: nothing the command
started outlives its run.

**Ending**, as API.md says: an exit code in ``exit_codes`` is success; any other code fails with
``exit code N``; a process ended by a signal has no exit code, its ``exit_signal`` names the
signal, and so does the error. A run stopped on request reports ``STOPPED`` with what the process
ended with; ``entry`` records why it was asked to stop.
"""
from __future__ import annotations

import errno
import os
import pwd
import select
import signal
import subprocess
from collections.abc import Mapping
from typing import Any

from tasks_app import clock, services
from tasks_app.execution.command_line import SpawnRefused, build
from tasks_app.execution.context import RunContext
from tasks_app.execution.outcome import STOPPED, Outcome
from tasks_app.models import EndReason, Run
from tasks_app.platform import groups

#: Bytes read from the pipe at a time: large, so a chatty command costs few reads and writes.
READ_SIZE = 1024 * 1024
#: Seconds between two looks at the stop event (and at the leader) while the command is silent.
POLL_INTERVAL = 0.05
#: Seconds the pipe is still read after the leader and its group have gone: a process that left
#: the group on purpose (a daemon) may hold it open for ever, and is not waited for.
DRAIN_FOR = 0.2


def execute(run: Run, ctx: RunContext) -> Outcome:
    """Run ``run``'s command to its end (or its stop) and report how it ended."""
    process = run.task.process
    try:
        child = start(run, process)
    except SpawnRefused as error:
        return Outcome(EndReason.FAILED, {"error": str(error)})
    except (OSError, subprocess.SubprocessError) as error:
        return Outcome(EndReason.FAILED, {"error": _start_error(process, error)})
    ctx.process_group = child.pid
    services.record_pid(run.id, child.pid)
    stopped = _follow(child, ctx, stop_signal=groups.signal_number(process["stop_signal"]),
                      graceful_stop=float(process["graceful_stop"]))
    return ending(child.returncode, exit_codes=process["exit_codes"], stopped=stopped)


def start(run: Run, process: Mapping[str, Any]) -> subprocess.Popen[bytes]:
    """The run's process group, started as its task declares."""
    line = build(process, parameters=run.task.parameters, values=run.parameters, run_env=run_env(run))
    user, group = _identity(process.get("user") or "")
    umask = process.get("umask") or ""
    return groups.spawn(line.argv, env=line.env, working_dir=process.get("working_dir") or "", user=user, group=group,
                        umask=int(umask, 8) if umask else -1)


def run_env(run: Run) -> dict[str, str]:
    """Taskdeck's own variables, which win over every other source."""
    return {"TASKDECK_RUN_ID": str(run.id), "TASKDECK_TASK_ID": run.task_id, "TASKDECK_ATTEMPT": str(run.attempt)}


def ending(returncode: int, *, exit_codes: list[int], stopped: bool) -> Outcome:
    """The outcome of a process that ended with ``returncode`` (negative: killed by that signal)."""
    if returncode < 0:
        name = groups.signal_name(-returncode)
        fields: dict[str, Any] = {"exit_code": None, "exit_signal": name, "error": f"killed by signal {name}"}
    else:
        fields = {"exit_code": returncode, "exit_signal": None}
        if returncode not in exit_codes:
            fields["error"] = f"exit code {returncode}"
    if stopped:
        fields.pop("error", None)  # entry writes why it was stopped
        return Outcome(STOPPED, fields)
    return Outcome(EndReason.SUCCESS if "error" not in fields else EndReason.FAILED, fields)


def _follow(child: subprocess.Popen[bytes], ctx: RunContext, *, stop_signal: int, graceful_stop: float) -> bool:
    """Copy the child's output into the run's log until the leader has exited, stopping its group
    when the run is asked to stop; then kill what is left in the group, reap the leader and read
    the pipe dry. Returns whether the group was stopped on request.

    One poll waits for output, for the leader's exit (a pidfd, on Linux) and, every
    ``POLL_INTERVAL``, for a stop request. The leftovers are killed while the exited leader is
    not reaped yet: its pid, the group's id, cannot be taken by a new process meanwhile.
    """
    assert child.stdout is not None
    pipe: int | None = child.stdout.fileno()
    os.set_blocking(pipe, False)
    poller = select.poll()
    poller.register(pipe, select.POLLIN)
    exit_fd = _exit_fd(child.pid)
    if exit_fd is not None:
        poller.register(exit_fd, select.POLLIN)
    kill_at: float | None = None
    stopping = False
    try:
        while not _exited(child.pid):
            for fd, _ in poller.poll(POLL_INTERVAL * 1000):
                if fd == pipe and not _read(pipe, ctx):
                    poller.unregister(pipe)
                    pipe = None  # every writer closed it: the leader is ending, or runs without output
            if ctx.stop_requested and not stopping:
                stopping = True
                groups.signal_group(child.pid, stop_signal)
                kill_at = clock.monotonic() + graceful_stop
            if kill_at is not None and clock.monotonic() >= kill_at:
                groups.signal_group(child.pid, signal.SIGKILL)
                kill_at = None
        groups.signal_group(child.pid, signal.SIGKILL)  # nothing the command started outlives it
        child.wait()
        if pipe is not None:
            _drain(pipe, poller, ctx)
    finally:
        if child.returncode is None:  # an error on the way: the group still goes
            groups.signal_group(child.pid, signal.SIGKILL)
            child.wait()
        if exit_fd is not None:
            os.close(exit_fd)
        child.stdout.close()
    return stopping


def _exit_fd(pid: int) -> int | None:
    """A descriptor that polls readable once process ``pid`` has exited (Linux 5.3+), or None:
    the loop then looks every ``POLL_INTERVAL``."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _exited(pid: int) -> bool:
    """Whether the leader has exited, leaving it unreaped (a zombie that keeps its pid)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _read(pipe: int, ctx: RunContext) -> bool:
    """What the pipe holds now, into the log; False once every writer has closed it."""
    while True:
        try:
            data = os.read(pipe, READ_SIZE)
        except BlockingIOError:
            return True
        except OSError as error:
            if error.errno == errno.EINTR:
                continue
            raise
        if not data:
            return False
        ctx.log_writer.write(data)
        if len(data) < READ_SIZE:
            return True


def _drain(pipe: int, poller: select.poll, ctx: RunContext) -> None:
    """The rest of the output, once the group is gone: until the pipe closes, or stays silent
    ``DRAIN_FOR`` seconds (held open by a process outside the group)."""
    while poller.poll(DRAIN_FOR * 1000) and _read(pipe, ctx):
        pass


def _identity(user: str) -> tuple[str | int | None, str | int | None]:
    """``name``, ``name:group`` or numeric ids as (user, group) for spawn. A user given without a
    group runs with that user's own group, never the worker's (root's)."""
    if not user:
        return None, None
    name, _, group = user.partition(":")
    uid_or_name: str | int = int(name) if name.isdigit() else name
    if group:
        return uid_or_name, int(group) if group.isdigit() else group
    try:
        entry = pwd.getpwuid(uid_or_name) if isinstance(uid_or_name, int) else pwd.getpwnam(uid_or_name)
    except KeyError:  # a numeric id with no entry here: its group of the same number
        return uid_or_name, uid_or_name
    return uid_or_name, entry.pw_gid


def _start_error(process: Mapping[str, Any], error: BaseException) -> str:
    """One line on why the process did not start: the program and the system's reason."""
    program = (process.get("argv") or [process.get("shell") or "/bin/sh"])[0]
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        if isinstance(error, PermissionError) and process.get("user"):
            reason += f" (as user {process['user']!r})"
        return f"Could not start {program!r}: {reason}."
    return f"Could not start {program!r}: {error}."

