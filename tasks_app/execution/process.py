"""The executor of command tasks: starts the run's command (``running.RunningProcess``), records
its pid, and drives it to its end: its output into the run's log as it arrives, its group stopped
when the run is asked to stop (cancel, overlap terminate, shutdown, a ``kill_task`` log cap, or
the watchdog's timeout), then the outcome by its exit status.

"running" was recorded by the claim, before anything was started. The pid is written on the run
once the command has run ``RECORD_PID_AFTER`` seconds; one that ends sooner has it written with
its end, in the end's own transaction: most short commands cost no write of their own. Nothing
needs the pid on the row sooner: stops go through the run's stop request and this executor, and
the worker's keeper kills the group should the worker die (platform/keeper.py). A command that
cannot start ends the run ``failed`` with one line saying why. A run stopped on request reports
``STOPPED`` with what its process ended with; ``entry`` records why it was asked to stop.
"""
from __future__ import annotations

import select
from collections.abc import Callable

from tasks_app import clock, services
from tasks_app.execution.command_line import SpawnRefused
from tasks_app.execution.context import RunContext
from tasks_app.execution.outcome import Outcome
from tasks_app.execution.running import RunningProcess, ending
from tasks_app.models import EndReason, Run

#: Seconds between two looks at the stop event while the command is silent and running.
POLL_INTERVAL = 0.05
#: Seconds a command runs before its pid is written on its run (sooner ones: with their end).
#: Measured with bench/process.py: a write of its own cost a `true` run ~0.9 ms of CPU.
RECORD_PID_AFTER = 0.1


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
        follow(process, ctx, record_pid=lambda: services.record_pid(run.id, process.pid))
        returncode = process.finish()
    finally:
        process.close()
    outcome = ending(returncode, exit_codes=settings["exit_codes"], stopped=process.stopping)
    return Outcome(outcome.reason, {"pid": process.pid, **outcome.fields})


def run_env(run: Run) -> dict[str, str]:
    """Taskdeck's own variables, which win over every other source."""
    return {"TASKDECK_RUN_ID": str(run.id), "TASKDECK_TASK_ID": run.task_id, "TASKDECK_ATTEMPT": str(run.attempt)}


def follow(process: RunningProcess, ctx: RunContext, *, record_pid: Callable[[], None]) -> None:
    """Until the leader has exited: one poll waits for output, for the exit (a pidfd, on Linux)
    and, every ``POLL_INTERVAL``, for a stop request; ``record_pid`` once the leader has run
    ``RECORD_PID_AFTER`` seconds."""
    poller = select.poll()
    for fd in process.descriptors():
        poller.register(fd, select.POLLIN)
    record_at: float | None = clock.monotonic() + RECORD_PID_AFTER
    while not process.exited:
        for fd, _ in poller.poll(POLL_INTERVAL * 1000):
            if not process.handle(fd):
                poller.unregister(fd)
        if ctx.stop_requested:
            process.stop()
        process.tick()
        if record_at is not None and clock.monotonic() >= record_at:
            record_pid()
            record_at = None
