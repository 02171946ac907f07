"""Child processes kept alive by their parent: ``serve``'s web, worker and scheduler.

``Child`` is one process in its own process group, told to stop (SIGTERM) by the kernel if its
parent dies (Linux's parent-death signal), so nothing is left running after a ``kill -9`` of
``serve``. ``Children`` supervises a set of them the way a supervisor should: a child that exits
is restarted after a pause that doubles with each quick exit (``RESTART_DELAYS``), its restarts
are counted, and the set gives up only on a child that keeps dying (``GIVE_UP_AFTER`` exits in a
row, each within ``HEALTHY_AFTER`` seconds of its start).
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from tasks_app import clock
from tasks_app.platform.stopflag import StopFlag

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1

#: Seconds before restarting a child after its first, second, ... exit in a row.
RESTART_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
#: A child up this long (seconds) was healthy: its next exit starts the count again.
HEALTHY_AFTER = 30.0
#: Exits in a row, each soon after a start, after which the set stops trying.
GIVE_UP_AFTER = 5


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In a child, before exec or after fork: Linux sends ``sig`` when the parent dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        pass  # not Linux: parents still stop their children on every normal exit path


class Child:
    """One child process in its own process group, so a signal reaches it and all it spawned."""

    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restarts = 0
        """Times this child was started again after exiting."""
        self.quick_exits = 0
        """Exits in a row, each within HEALTHY_AFTER of a start."""
        self.restart_at: float | None = None
        """When the exited child starts again (clock.monotonic), or None while it runs."""

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env=self.env, start_new_session=True,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.started_at = clock.monotonic()
        self.restart_at = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group (its own children included)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float) -> bool:
        """Wait for the child to exit; True if it did."""
        if self.process is None:
            return True
        try:
            self.process.wait(timeout=max(0.0, timeout))
            return True
        except subprocess.TimeoutExpired:
            return False

    def terminate(self) -> None:
        """Ask the child to stop (SIGTERM to the child alone: it stops its own helpers)."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def stop(self, *, grace: float) -> None:
        """Ask the child to stop, then SIGKILL its whole group after ``grace`` seconds."""
        self.terminate()
        if not self.wait(grace):
            self.signal(signal.SIGKILL)
            self.wait(5)
        self.signal(signal.SIGKILL)  # leftovers of the group (a worker that outlived its parent)

    def exit_text(self) -> str:
        code = self.process.returncode if self.process else None
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"


class ChildKeepsDying(Exception):
    """A child exited GIVE_UP_AFTER times in a row, each soon after being started."""

    def __init__(self, child: Child) -> None:
        self.child = child
        super().__init__(f"The {child.name} process keeps exiting ({child.exit_text()}, {child.quick_exits} times "
                         f"in a row within {HEALTHY_AFTER:g} s of starting)")


class Children:
    """A supervised set of children: started together, restarted one by one, stopped together."""

    def __init__(self, children: Sequence[Child], *, on_restart: Callable[[Child], None] | None = None) -> None:
        self.children = list(children)
        self.on_restart = on_restart

    def __getitem__(self, name: str) -> Child:
        return next(child for child in self.children if child.name == name)

    def __contains__(self, name: str) -> bool:
        return any(child.name == name for child in self.children)

    def start(self) -> None:
        for child in self.children:
            child.start()

    def restarts(self) -> dict[str, int]:
        return {child.name: child.restarts for child in self.children}

    def watch(self, stopping: StopFlag | threading.Event, *, every: float = 0.2,
              tick: Callable[[], None] | None = None) -> None:
        """Keep every child running until ``stopping`` is set; raises ChildKeepsDying.

        ``tick`` is called on each look (serve reports its restarts from it)."""
        while not stopping.wait(every):
            self.look()
            if tick is not None:
                tick()

    def look(self) -> None:
        """One look: note the children that exited, restart those whose pause is over."""
        now = clock.monotonic()
        for child in self.children:
            if child.restart_at is None and not child.alive():
                self._exited(child, now=now)
            elif child.restart_at is not None and now >= child.restart_at:
                child.start()
                child.restarts += 1
                if self.on_restart is not None:
                    self.on_restart(child)

    def _exited(self, child: Child, *, now: float) -> None:
        child.signal(signal.SIGKILL)  # whatever it left in its group (a dead worker's cluster)
        child.quick_exits = child.quick_exits + 1 if now - child.started_at < HEALTHY_AFTER else 1
        if child.quick_exits >= GIVE_UP_AFTER:
            raise ChildKeepsDying(child)
        delay = RESTART_DELAYS[min(child.quick_exits, len(RESTART_DELAYS)) - 1]
        child.restart_at = now + delay
        logger.error("The %s process exited (%s); starting it again in %g s.", child.name, child.exit_text(), delay)

    def stop(self, *, first: Sequence[str], then: Sequence[str], grace: float, last_grace: float) -> None:
        """Stop ``first`` and ``then`` at once (SIGTERM); ``first`` get ``grace`` s, ``then`` get
        ``last_grace`` s more; then SIGKILL to every group."""
        for child in self.children:
            child.restart_at = None
            child.terminate()
        deadline = clock.monotonic() + grace
        for name in first:
            if name in self:
                self[name].stop(grace=deadline - clock.monotonic())
        deadline = clock.monotonic() + last_grace
        for name in then:
            if name in self:
                self[name].stop(grace=deadline - clock.monotonic())


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children of children included), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def alive(pid: int) -> bool:
    """Whether a process of this host still runs; a killed one not yet reaped (zombie) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            state = handle.read().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): trust kill(0)
    return state not in ("Z", "X")
