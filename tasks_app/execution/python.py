"""The executor of python tasks: calls the task's callable with ``ctx`` and reports how it ended.

This is the one broad catch around task code: whatever the callable raises becomes the run's
error (a one-line message, the traceback kept apart); a return value must be JSON (it is the run's
result). print() and stderr inside the callable go to the run's output.
"""
from __future__ import annotations

import contextlib

from tasks_app.definitions.callables import resolve_callable
from tasks_app.execution.context import RunCancelled, RunContext, json_data
from tasks_app.execution.outcome import STOPPED, Outcome, failed, message
from tasks_app.models import EndReason, Run


def execute(run: Run, ctx: RunContext) -> Outcome:
    """Call ``run``'s callable with ``ctx``: success with its result, failed with what it raised,
    or STOPPED if it stopped because it was asked to."""
    try:
        function = resolve_callable(run.task.callable)
        with contextlib.redirect_stdout(ctx.output_stream), contextlib.redirect_stderr(ctx.output_stream):
            value = function(ctx)
    except RunCancelled:
        return Outcome(STOPPED)
    except Exception as error:
        ctx.log.error("%s", message(error))
        return failed(error)
    if ctx.stop_seen:
        return Outcome(STOPPED)
    try:
        result = json_data(value)
    except (TypeError, ValueError) as error:
        return Outcome(EndReason.FAILED, {"error": f"The task's return value is not JSON-serialisable: {error}"})
    return Outcome(EndReason.SUCCESS, {"result": result})
