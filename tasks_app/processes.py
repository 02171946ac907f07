"""Child processes that must die with their parent: used by ``serve`` for web, worker, scheduler."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends SIGTERM if the parent dies, so nothing is orphaned."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: serve still stops its children on every normal exit path


class Child:
    """One child process in its own process group, so a signal reaches it and all it spawned."""

    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env=self.env, start_new_session=True, preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None
        )

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

