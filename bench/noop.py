"""The callables the bench runs: as cheap as a task can be, so the bench measures the machinery.

``noop``/``stamp`` take Taskdeck's run context; ``noop_plain``/``stamp_plain`` are what a plain
django-q2 user would enqueue. ``stamp*`` return the wall-clock time at which the task code began,
the one "started" moment both sides can record the same way (django-q2's own ``Task.started``
is stamped by ``async_task`` at enqueue time, not when a worker picks the task up).
"""
from __future__ import annotations

import subprocess
import time
from typing import Any


def noop(ctx: Any) -> None:
    return None


def stamp(ctx: Any) -> float:
    return time.time()


def noop_plain() -> None:
    return None


def stamp_plain() -> float:
    return time.time()


def true_plain() -> int:
    """What a plain django-q2 user would enqueue to run a command: ``true``, to its exit code
    (bench/process.py's peer of a Taskdeck command run)."""
    return subprocess.run(["true"], check=False).returncode


def progress_steps(ctx: Any) -> int:
    """``steps`` progress reports ``interval`` seconds apart (bench/events.py).

    The interval must exceed PROGRESS_INTERVAL (0.25 s) so that every report is written as its
    own ``task:progress`` event instead of being merged by the run context's throttle.
    """
    steps = int(ctx.params.get("steps") or 20)
    interval = float(ctx.params.get("interval") or 0.3)
    for step in range(1, steps + 1):
        time.sleep(interval)
        ctx.progress(step, steps, f"step {step}/{steps}")
    return steps
