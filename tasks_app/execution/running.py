"""One started command: ``RunningProcess``, its process group, its output on the way to its run's
log, its stop and its end. Driven by whoever polls its descriptors: the command executor drives
one (``process.py``), a supervisor many at once from one loop.

**Starting** (``RunningProcess.start``). The argv and environment come from
``command_line.build`` (parameters as separate argv items or environment entries, the secrets
file read here, at spawn); the process starts in a new session and process group
(``platform.groups.spawn``), as ``user`` with ``umask`` when the settings say so. A process that
cannot start raises ``SpawnRefused`` with one line naming why (never a line of an env or secrets
file).

**Output.** stdout and stderr share one pipe, so they interleave in arrival order; what the pipe
gives goes, as read (up to ``READ_SIZE`` bytes at a time, no work per line), to the run's
``LogWriter``, which stores it in chunks with its cap.

**Stopping** (``stop``, then ``tick``): ``stop_signal`` to the group, and SIGKILL once
``graceful_stop`` seconds have passed with the leader still there; output is still read
meanwhile, so a command that writes on its way out is not blocked on a full pipe.

**Ending** (``finish``, once ``exited``): whatever is left in the group gets SIGKILL while the
exited leader is not reaped yet (its pid, the group's id, cannot be taken by a new process
meanwhile), then the leader is reaped and the pipe read dry: nothing the command started outlives
it. ``ending`` turns the exit status into an Outcome as API.md says: a code in ``exit_codes`` is
success, another fails with ``exit code N``; a process ended by a signal has no exit code, its
``exit_signal`` names the signal, and so does the error.
"""
from __future__ import annotations

import errno
import os
import select
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from tasks_app import clock
from tasks_app.execution.command_line import SpawnRefused, build
from tasks_app.execution.outcome import STOPPED, Outcome
from tasks_app.execution.output import LogWriter
from tasks_app.models import EndReason
from tasks_app.platform import groups

#: Bytes read from the pipe at a time: large, so a chatty command costs few reads and writes.
READ_SIZE = 1024 * 1024
#: Seconds the pipe is still read after the leader and its group have gone: a process that left
#: the group on purpose (a daemon) may hold it open for ever, and is not waited for.
DRAIN_FOR = 0.2


class RunningProcess:
    """A started command's group, read into ``log`` and stopped as its settings say."""

    def __init__(self, child: subprocess.Popen[bytes], *, log: LogWriter, stop_signal: int,
                 graceful_stop: float) -> None:
        assert child.stdout is not None
        self.child = child
        self.pid = child.pid
        self.log = log
        self.stop_signal = stop_signal
        self.graceful_stop = graceful_stop
        self.stopping = False
        """The group was asked to stop (``stop``)."""
        self.kill_at: float | None = None
        """When the group gets SIGKILL if the leader is still there (monotonic seconds)."""
        self.pipe: int | None = child.stdout.fileno()
        os.set_blocking(self.pipe, False)
        self.exit_fd = _exit_fd(child.pid)
        self._exit_seen = False

    @classmethod
    def start(cls, process: Mapping[str, Any], *, log: LogWriter, parameters: Sequence[Mapping[str, Any]] = (),
              values: Mapping[str, Any] | None = None, run_env: Mapping[str, str]) -> RunningProcess:
        """Start a command with ``process`` settings (Task.process); SpawnRefused if it cannot."""
        line = build(process, parameters=parameters, values=values or {}, run_env=run_env)
        user, group = _identity(process.get("user") or "")
        umask = process.get("umask") or ""
        try:
            child = groups.spawn(line.argv, env=line.env, working_dir=process.get("working_dir") or "", user=user,
                                 group=group, umask=int(umask, 8) if umask else -1)
        except (OSError, subprocess.SubprocessError) as error:
            raise SpawnRefused(_start_error(process, error)) from None
        return cls(child, log=log, stop_signal=groups.signal_number(process["stop_signal"]),
                   graceful_stop=float(process["graceful_stop"]))

    # -- what a poll loop does with it --

    def descriptors(self) -> list[int]:
        """What to poll for reading: the pipe while it is open, and the exit descriptor."""
        return [fd for fd in (self.pipe, self.exit_fd) if fd is not None]

    def handle(self, fd: int) -> bool:
        """``fd`` polled ready: read the pipe, or note the exit. False once ``fd`` has nothing
        more to give (unregister it)."""
        if fd == self.exit_fd:
            self._exit_seen = True
            return False
        if fd == self.pipe and not self._read():
            self.pipe = None  # every writer closed it: the leader is ending, or runs without output
            return False
        return True

    @property
    def exited(self) -> bool:
        """Whether the leader has exited (left unreaped until ``finish``)."""
        if self.exit_fd is not None and not self._exit_seen:
            return False
        return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def stop(self) -> None:
        """Ask the group to stop: ``stop_signal`` now, SIGKILL after ``graceful_stop``. Once."""
        if self.stopping:
            return
        self.stopping = True
        groups.signal_group(self.pid, self.stop_signal)
        self.kill_at = clock.monotonic() + self.graceful_stop

    def tick(self) -> None:
        """SIGKILL to the group once its grace has passed."""
        if self.kill_at is not None and clock.monotonic() >= self.kill_at:
            groups.signal_group(self.pid, signal.SIGKILL)
            self.kill_at = None

    def finish(self) -> int:
        """Once ``exited`` (or to give up on it): kill what is left of the group, reap the
        leader, read the pipe dry, close. Returns the leader's return code."""
        try:
            groups.signal_group(self.pid, signal.SIGKILL)  # nothing the command started outlives it
            self.child.wait()
            if self.pipe is not None:
                self._drain()
        finally:
            self.close()
        return self.child.returncode

    def close(self) -> None:
        if self.child.returncode is None:  # an error on the way: the group still goes
            groups.signal_group(self.pid, signal.SIGKILL)
            self.child.wait()
        if self.exit_fd is not None:
            os.close(self.exit_fd)
            self.exit_fd = None
        assert self.child.stdout is not None
        self.child.stdout.close()
        self.pipe = None

    # -- reading --

    def _read(self) -> bool:
        """What the pipe holds now, into the log; False once every writer has closed it."""
        assert self.pipe is not None
        while True:
            try:
                data = os.read(self.pipe, READ_SIZE)
            except BlockingIOError:
                return True
            except OSError as error:
                if error.errno == errno.EINTR:
                    continue
                raise
            if not data:
                return False
            self.log.write(data)
            if len(data) < READ_SIZE:
                return True

    def _drain(self) -> None:
        """The rest of the output, once the group is gone: until the pipe closes, or stays silent
        ``DRAIN_FOR`` seconds (held open by a process outside the group)."""
        assert self.pipe is not None
        poller = select.poll()
        poller.register(self.pipe, select.POLLIN)
        while poller.poll(DRAIN_FOR * 1000) and self._read():
            pass


def ending(returncode: int, *, exit_codes: Sequence[int], stopped: bool) -> Outcome:
    """The outcome of a process that ended with ``returncode`` (negative: killed by that signal);
    ``stopped``: it was asked to, and its caller says why (``STOPPED``)."""
    if returncode < 0:
        name = groups.signal_name(-returncode)
        fields: dict[str, Any] = {"exit_code": None, "exit_signal": name, "error": f"killed by signal {name}"}
    else:
        fields = {"exit_code": returncode, "exit_signal": None}
        if returncode not in exit_codes:
            fields["error"] = f"exit code {returncode}"
    if stopped:
        fields.pop("error", None)
        return Outcome(STOPPED, fields)
    return Outcome(EndReason.SUCCESS if "error" not in fields else EndReason.FAILED, fields)


def _exit_fd(pid: int) -> int | None:
    """A descriptor that polls readable once process ``pid`` has exited (Linux 5.3+), or None:
    callers then look at ``exited`` on their own beat."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _identity(user: str) -> tuple[str | int | None, str | int | None]:
    """``name``, ``name:group`` or numeric ids as (user, group) for spawn (which gives a user
    without a group that user's own)."""
    if not user:
        return None, None
    name, _, group = user.partition(":")
    return (int(name) if name.isdigit() else name), (int(group) if group.isdigit() else group or None)


def _start_error(process: Mapping[str, Any], error: BaseException) -> str:
    """One line on why the process did not start: the program and the system's reason."""
    program = (process.get("argv") or [process.get("shell") or "/bin/sh"])[0]
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        if isinstance(error, PermissionError) and process.get("user"):
            reason += f" (as user {process['user']!r})"
        return f"Could not start {program!r}: {reason}."
    return f"Could not start {program!r}: {error}."
