"""The executor of command tasks: starts the run's command (``running.RunningProcess``), records
its pid, and drives it to its end: its output into the run's log as it arrives, its group stopped
when the run is asked to stop (cancel, overlap terminate, shutdown, a ``kill_task`` log cap, or
the watchdog's timeout), then the outcome by its exit status.

"running" was recorded by the claim, before anything was started. A command that cannot start
ends the run ``failed`` with one line saying why. A run stopped on request reports ``STOPPED``
with what its process ended with; ``entry`` records why it was asked to stop.
"""
from __future__ import annotations

import select

from tasks_app import services
from tasks_app.execution.command_line import SpawnRefused
from tasks_app.execution.context import RunContext
from tasks_app.execution.outcome import Outcome
from tasks_app.execution.running import RunningProcess, ending
from tasks_app.models import EndReason, Run

#: Seconds between two looks at the stop event while the command is silent and running.
POLL_INTERVAL = 0.05


def execute(run: Run, ctx: RunContext) -> Outcome:
    """Run ``run``'s command to its end (or its stop) and report how it ended."""
    settings = run.task.process
    try:
        process = RunningProcess.start(settings, log=ctx.log_writer, parameters=run.task.parameters,
                                       values=run.parameters, run_env=run_env(run))
    except SpawnRefused as error:
        return Outcome(EndReason.FAILED, {"error": str(error)})
    ctx.process_group = process.pid
    try:
        services.record_pid(run.id, process.pid)
        follow(process, ctx)
        returncode = process.finish()
    finally:
        process.close()
    return ending(returncode, exit_codes=settings["exit_codes"], stopped=process.stopping)


def run_env(run: Run) -> dict[str, str]:
    """Taskdeck's own variables, which win over every other source."""
    return {"TASKDECK_RUN_ID": str(run.id), "TASKDECK_TASK_ID": run.task_id, "TASKDECK_ATTEMPT": str(run.attempt)}


def follow(process: RunningProcess, ctx: RunContext) -> None:
    """Until the leader has exited: one poll waits for output, for the exit (a pidfd, on Linux)
    and, every ``POLL_INTERVAL``, for a stop request."""
    poller = select.poll()
    for fd in process.descriptors():
        poller.register(fd, select.POLLIN)
    while not process.exited:
        for fd, _ in poller.poll(POLL_INTERVAL * 1000):
            if not process.handle(fd):
                poller.unregister(fd)
        if ctx.stop_requested:
            process.stop()
        process.tick()
