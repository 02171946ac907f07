"""Process groups: a command run's processes started, signalled and killed as one.

A command starts in a new session, so in a new process group whose id is the leader's pid; a
signal to the group reaches everything the command started (children, grandchildren) that did
not leave the group on purpose. These rules hold whatever the command does:

* **A stop really stops.** ``signal_group`` reaches everything in the group: the command
  executor (execution/process.py) sends the task's stop signal, SIGKILL after the grace, and
  SIGKILL to whatever is still in the group once the leader has gone (a background child, a
  grandchild ignoring SIGTERM).
* **The group dies with its worker.** The process that starts a command tells its keeper
  (``keeper.py``: a small process of its own) before the start, after it, and once the leader is
  reaped; when that process dies, SIGKILL included, its keeper kills every group it left.
* **Starting costs a vfork, not a fork.** Python code run in the child before exec (a
  ``preexec_fn``) makes subprocess fork the whole worker: 10-20 ms for a Django process,
  measured by bench/process.py. So the child runs none: a signal the worker ignores would stay
  ignored across exec, so for the instant of the spawn the worker catches it instead (a caught
  signal is back at its default action after exec; only the main thread can, elsewhere the slow
  path resets them). CPython forks rather than vforks to change the user, so util-linux's
  ``setpriv`` does that (and drops the worker's supplementary groups), then execs the command.
* **Nothing else outlives it either.** ``kill_group`` ends what is left of a group, called by
  whoever notices a run's worker gone while its group may live (the reaper on the same host).
"""
from __future__ import annotations

import contextlib
import errno
import functools
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tasks_app.platform.keeper import Keeper, keeper

#: Signals a command starts with at their default action, whatever the worker inherited: a worker
#: started in the background by a shell has SIGINT and SIGQUIT ignored, and an ignored signal stays
#: ignored across exec, so a command stopped with SIGINT would never notice (a test caught it).
_DEFAULT_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
                    signal.SIGPIPE, signal.SIGALRM)


def _default_signals() -> None:
    """In the child, before exec (the slow path): default signal actions, nothing blocked."""
    for sig in _DEFAULT_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


@functools.cache
def _setpriv() -> str | None:
    """util-linux's ``setpriv`` if it is here and runs, else None."""
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return None
    try:
        checked = subprocess.run([setpriv, "--", "true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return setpriv if checked.returncode == 0 else None


def _caught(*_: object) -> None:
    """Stands in for "ignored" while a child is spawned (see ``_ignored_caught``)."""


def _ignored() -> list[int]:
    return [sig for sig in _DEFAULT_SIGNALS if signal.getsignal(sig) == signal.SIG_IGN]


@contextlib.contextmanager
def _ignored_caught(ignored: list[int]) -> Iterator[None]:
    """The stop signals this process ignores are caught instead for the instant of a spawn, so
    the child starts with them at their default action. Only the main thread may change signal
    actions: anywhere else this raises ValueError."""
    for sig in ignored:
        signal.signal(sig, _caught)
    try:
        yield
    finally:
        for sig in ignored:
            signal.signal(sig, signal.SIG_IGN)


def _resolve(program: str, env: Mapping[str, str], working_dir: str) -> str:
    """Where ``program`` is, as exec would find it; FileNotFoundError or PermissionError as
    exec would raise them (setpriv would otherwise exit 127 or 126 with a line of its own)."""
    if "/" in program:
        path = os.path.join(working_dir, program) if working_dir else program
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        return program
    found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return program


def _primary_group(user: str | int | None) -> int:
    """The group a user runs with when none is given: its own (never the worker's, root's); a
    numeric id with no entry here gets the group of the same number."""
    try:
        entry = pwd.getpwuid(int(user)) if str(user).isdigit() else pwd.getpwnam(str(user))
    except KeyError:
        if str(user).isdigit():
            return int(user)
        raise
    return entry.pw_gid


class Leader(subprocess.Popen[bytes]):
    """A command's group leader as ``spawn`` started it. Once it is reaped (``wait``, ``poll``,
    ``communicate``), its pid, the group's id, may go to another process: its keeper forgets the
    group then. Kill what is left of the group before reaping (``RunningProcess.finish``)."""

    kept_by: Keeper | None = None

    def poll(self) -> int | None:
        returncode = super().poll()
        if returncode is not None and self.kept_by is not None:
            self.kept_by.reaped(self.pid)
        return returncode

    def wait(self, timeout: float | None = None) -> int:
        returncode = super().wait(timeout)
        if self.kept_by is not None:
            self.kept_by.reaped(self.pid)
        return returncode


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    working_dir: str = "",
    user: str | int | None = None,
    group: str | int | None = None,
    umask: int = -1,
) -> Leader:
    """Start ``argv`` as the leader of a new process group: stdin from /dev/null, stdout and
    stderr into one pipe (``process.stdout``) so they interleave in arrival order. ``user`` and
    ``group`` need this process to be root (the definitions check says so on load); a process
    started as another user keeps none of this one's supplementary groups.

    The pipe is made here, so that the keeper knows it before the exec: should this process die
    before it tells the keeper the pid, the keeper finds the command by the pipe it holds."""
    options: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "env": dict(env),
                               "cwd": working_dir or None, "umask": umask, "start_new_session": True,
                               "close_fds": True}
    if user not in (None, ""):
        argv = _as_user(argv, options, env=env, user=user, group=group)
    guard = keeper()
    read_end, write_end = os.pipe()
    inode = os.fstat(read_end).st_ino
    guard.starting(inode)
    try:
        child = _start(list(argv), stdout=write_end, **options)
    except BaseException:
        os.close(read_end)
        guard.started(inode, None)
        raise
    finally:
        os.close(write_end)
    child.kept_by = guard
    guard.started(inode, child.pid)
    child.stdout = open(read_end, "rb")  # noqa: SIM115 (the caller closes it, as Popen's own)
    return child


def _as_user(argv: Sequence[str], options: dict[str, Any], *, env: Mapping[str, str], user: str | int,
             group: str | int | None) -> list[str]:
    """The argv (and ``options``) that start ``argv`` as ``user``: through setpriv, so still by vfork;
    where it is missing, by subprocess's own switch (which forks)."""
    if group in (None, ""):
        group = _primary_group(user)
    setpriv = _setpriv()
    if setpriv is None:
        options.update(user=user, group=group, extra_groups=[])
        return list(argv)
    _resolve(argv[0], env, options["cwd"] or "")
    return [setpriv, "--reuid", str(user), "--regid", str(group), "--clear-groups", "--", *argv]


def _start(argv: list[str], **options: Any) -> Leader:
    """Popen, with the stop signals at their default action in the child (see the module's docstring)."""
    ignored = _ignored()
    if not ignored:
        return Leader(argv, **options)
    if threading.current_thread() is threading.main_thread():
        with _ignored_caught(ignored):
            return Leader(argv, **options)
    return Leader(argv, preexec_fn=_default_signals, **options)


def signal_group(group_id: int, sig: int) -> bool:
    """Send ``sig`` to every process of the group; False if none is left."""
    try:
        os.killpg(group_id, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a member changed user (setuid): still there, out of this process's reach
    return True


def kill_group(group_id: int) -> bool:
    """SIGKILL to whatever is left in the group; False if no live process was."""
    alive = group_exists(group_id)
    signal_group(group_id, signal.SIGKILL)
    return alive


def group_exists(group_id: int) -> bool:
    """Whether a live process of the group is still there. A killed member whose new parent has
    not reaped it yet (a zombie: it runs nothing) does not count, though the kernel still counts
    it in the group; on Linux the process table tells them apart, read only when the kernel
    still counts someone in the group."""
    counted = signal_group(group_id, 0)
    if not counted or not sys.platform.startswith("linux"):
        return counted
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == group_id and fields[0] != b"Z":
            return True
    return False


def signal_number(name: str) -> int:
    """``SIGTERM`` (as the definitions check stores it) as its number."""
    return int(signal.Signals[name])


def signal_name(number: int) -> str:
    """The name of signal ``number`` (``SIGKILL``), or ``SIG<n>`` for one Python has no name for."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"
