"""What a supervisor knows of an instance it owns while it runs it: ``Instance`` (the process,
its run and log, its state, streak and restarts, its health check, its boot wait)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks_app.execution.output import LogWriter
from tasks_app.execution.running import RunningProcess
from tasks_app.models import InstanceState, Run, Task
from tasks_app.supervision.health import Probe


def lease_name(task_id: str, index: int) -> str:
    return f"service:{task_id}:{index}"


def instance_exists(task: Task | None, index: int) -> bool:
    """Whether ``task`` (a service) has an instance ``index`` to run: enabled, not removed, and that many."""
    return (task is not None and task.enabled and task.removed_at is None
            and index < int(task.process.get("instances", 1)))


@dataclass(eq=False)
class Instance:
    """One instance this supervisor owns, as it runs it."""

    task_id: str
    index: int
    settings: dict[str, Any]
    dependencies: tuple[str, ...] = ()
    priority: int = 0
    process: RunningProcess | None = None
    run: Run | None = None
    log: LogWriter | None = None
    state: str = InstanceState.STOPPED
    streak: int = 0
    restarts: int = 0
    started: int = 0
    up_since: float | None = None
    healthy: bool = False
    next_start: float | None = None
    """When it starts (again), monotonic seconds; None: it waits for an operator."""
    stopping_for: str = ""
    """Why its process is being stopped: an EndReason (shutdown, cancelled) or ``restart``."""
    requests: tuple[int, int] = (0, 0)
    """The operators' start and restart counts already acted on."""
    overflowed: bool = False
    probe: Probe | None = None
    """Its current process's health check, when its service has one."""
    booted: bool = False
    """Started once since this supervisor took it: later starts do not wait for dependencies."""
    boot_deadline: float | None = None
    """When it starts even though a service it depends on is not healthy yet."""

    @property
    def name(self) -> str:
        return lease_name(self.task_id, self.index)

    def up_long_enough(self, now: float) -> bool:
        """Up ``healthy_after`` seconds, not being stopped, with no health check to say otherwise."""
        return (self.process is not None and not self.healthy and self.up_since is not None and not self.stopping_for
                and self.probe is None and now - self.up_since >= float(self.settings.get("healthy_after", 10)))

    def due(self, now: float) -> list[float]:
        """When it next needs a turn of the loop (monotonic seconds): its start, its kill after the
        grace, its becoming healthy, its health check, its boot wait's next look."""
        due = []
        if self.next_start is not None and self.process is None:
            due.append(self.next_start)
        if self.process is not None and self.process.kill_at is not None:
            due.append(self.process.kill_at)
        if self.process is not None and not self.healthy and self.up_since is not None:
            due.append(self.up_since + float(self.settings.get("healthy_after", 10)))
        if self.probe is not None:
            due.append(self.probe.next_at if self.probe.due() else now + 0.05)
        if self.boot_deadline is not None and self.process is None:
            due.append(min(self.boot_deadline, now + 0.2))
        return due
