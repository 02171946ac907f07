"""The keeper: a small process beside each process that starts commands, which kills their process
groups once that process is gone, however it went (SIGKILL included).

A command runs in a session of its own (``groups.spawn``), so nothing reaches it when its worker
dies unless something is arranged. Linux's parent-death signal would kill the leader (not what it
started), but the child must set it itself between fork and exec: Python code there made
subprocess fork the whole worker (10-20 ms a run), and an exec of ``setpriv`` to set it cost
~1.5 ms of wall time and as much CPU a run (bench/process.py). Telling a keeper costs a few
writes to a pipe, and it kills the whole group, not only the leader.

The first spawn of a process starts its keeper (``Keeper``: this file run by a bare interpreter,
``python -I -S``; ~30 ms of CPU once, 11 MB resident of which 5 MB its own), in a session of its
own so that a signal to the worker's process group does not reach it. It reads a pipe only that
process writes, three kinds of line:

``? INODE``       a command is about to start, its output into the pipe INODE;
``+ INODE PID``   it started: its group is PID (``x INODE``: it did not start);
``- PID``         its leader was reaped; what was left of its group was killed before.

The keeper waits for its process's death (a pidfd; without one, for the pipe's end) and reads the
pipe every ``READ_EVERY`` seconds meanwhile: no wake-up per command. Once the process is gone it
sends SIGKILL to every group started and not reaped, and, for a start still under way (the
process died between the exec and its next line), to the group of every process holding that
start's output pipe (from /proc/*/fd; the pipe is known before the exec, the pid only after).
Then it exits. Run as a script it is the keeper; imported (by ``groups``) it is its client, so
it imports nothing but the standard library.
"""
from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import sys
import threading

#: Seconds between two reads of the pipe while the process lives: often enough that the pipe never
#: fills (``PIPE_SIZE``: ~19,000 starts of ~55 bytes), rarely enough to cost nothing.
READ_EVERY = 1.0
#: Bytes the pipe holds (Linux's default pipe-max-size; 64 KiB where it cannot be widened).
PIPE_SIZE = 1024 * 1024


# --- The client: in the process that starts commands ---------------------------------------------


class Keeper:
    """This process's keeper, started with it; tells it of every command started and reaped.

    Each line is one write below PIPE_BUF, so lines from several threads never interleave. A
    keeper that died (killed on its own) is started again on the next line, and told of every
    group still running."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.running: set[int] = set()
        """The groups started and not reaped, for a keeper started again."""
        self._lock = threading.Lock()
        self._pipe, self._process = self._start()

    def _start(self) -> tuple[int, subprocess.Popen[bytes]]:
        read_end, write_end = os.pipe()
        try:
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except (AttributeError, OSError):
            pass  # not Linux, or past this user's pipe-max-size: 64 KiB, read often enough still
        try:
            process = subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(__file__), str(self.owner)],
                                       stdin=read_end, stdout=subprocess.DEVNULL, start_new_session=True,
                                       close_fds=True)
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        return write_end, process

    @property
    def pid(self) -> int:
        """The keeper process's pid (to look at it, as ps or a test would)."""
        return self._process.pid

    def starting(self, inode: int) -> None:
        """A command is about to start, its output into pipe ``inode``."""
        self._tell(f"? {inode}\n")

    def started(self, inode: int, pid: int | None) -> None:
        """The start into pipe ``inode`` gave group ``pid`` (None: it did not start)."""
        if pid is None:
            self._tell(f"x {inode}\n")
        else:
            self._tell(f"+ {inode} {pid}\n", running=pid)

    def reaped(self, pid: int) -> None:
        """Group ``pid``'s leader was reaped (what was left of the group killed before): its id may go
        to another process now, which the keeper must never kill."""
        if pid in self.running:
            self._tell(f"- {pid}\n", reaped=pid)

    def _tell(self, line: str, *, running: int | None = None, reaped: int | None = None) -> None:
        with self._lock:
            if running is not None:
                self.running.add(running)
            self.running.discard(reaped)
            try:
                os.write(self._pipe, line.encode())
            except BrokenPipeError:  # the keeper died: a new one, told of every group still running
                os.close(self._pipe)
                self._process.wait()
                self._pipe, self._process = self._start()
                os.write(self._pipe, ("".join(f"+ 0 {pid}\n" for pid in self.running) + line).encode())


_keeper: Keeper | None = None
_keeper_lock = threading.Lock()


def keeper() -> Keeper:
    """This process's keeper, started on first use. One per process, kept here because a process
    has one: a process forked from one with a keeper starts a keeper of its own."""
    global _keeper
    with _keeper_lock:
        if _keeper is None or _keeper.owner != os.getpid():
            _keeper = Keeper()
        return _keeper


# --- The keeper process ---------------------------------------------------------------------------


class Groups:
    """What the keeper was told: the groups running, and the starts under way (by pipe inode)."""

    def __init__(self) -> None:
        self.running: set[int] = set()
        self.starting: set[int] = set()
        self._partial = b""

    def take(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            kind, *numbers = line.split()
            if kind == b"?":
                self.starting.add(int(numbers[0]))
            elif kind == b"+":
                self.starting.discard(int(numbers[0]))
                self.running.add(int(numbers[1]))
            elif kind == b"x":
                self.starting.discard(int(numbers[0]))
            elif kind == b"-":
                self.running.discard(int(numbers[0]))

    def read(self, source: int) -> bool:
        """What the pipe holds now; True once its writers are all gone."""
        while True:
            try:
                data = os.read(source, 65536)
            except BlockingIOError:
                return False
            if not data:
                return True
            self.take(data)

    def kill(self) -> None:
        """SIGKILL to every group running, and to the group of every process holding the output
        pipe of a start under way."""
        targets = set(self.running)
        if self.starting:
            targets.update(groups_holding({f"pipe:[{inode}]" for inode in self.starting}))
        for group in targets:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def groups_holding(links: set[str]) -> set[int]:
    """The process groups of the processes with one of ``links`` (``pipe:[INODE]``) open."""
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            descriptors = os.listdir(f"/proc/{entry.name}/fd")
            if any(os.readlink(f"/proc/{entry.name}/fd/{fd}") in links for fd in descriptors):
                found.add(os.getpgid(int(entry.name)))
        except OSError:
            continue  # gone meanwhile, or not ours to look at
    return found


def watch(owner: int) -> int | None:
    """A descriptor that polls readable once ``owner`` (this keeper's parent) has exited; None if
    there is no pidfd here or the owner is already gone."""
    try:
        descriptor = os.pidfd_open(owner)
    except (AttributeError, OSError):
        return None
    if os.getppid() != owner:  # gone before the pidfd was open: it may name another process
        os.close(descriptor)
        return None
    return descriptor


def keep(owner: int, source: int = 0) -> None:
    """Until ``owner`` is gone: read what it tells on ``source``; then kill what it left."""
    os.set_blocking(source, False)
    groups = Groups()
    owner_exit = watch(owner)
    poller = select.poll()
    if owner_exit is not None:
        poller.register(owner_exit, select.POLLIN)
    else:
        poller.register(source, select.POLLIN)  # no pidfd: the pipe's end tells the owner has gone
    alive = os.getppid() == owner
    while alive:
        exited = bool(poller.poll(READ_EVERY * 1000)) and owner_exit is not None
        alive = not groups.read(source) and not exited
    groups.read(source)  # what the owner wrote last (a process it forked may hold the pipe open)
    groups.kill()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the owner's group's Ctrl-C is not for the keeper
    keep(int(sys.argv[1]))
