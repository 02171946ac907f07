"""How a run's code ended, as its executor reports it: ``Outcome``, and the error message every
executor writes the same way.

An executor only reports; ``entry`` records the end (``services.finish_run``), so whichever kind
of task ran, its end is written in one place, with one retry loop around a refusing database.
"""
from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tasks_app.models import EndReason
from tasks_app.text import storable

#: The reason an executor gives when the run's code stopped because it was asked to; ``entry``
#: records the reason the stop was asked for (cancelled, terminated or shutdown) instead.
STOPPED = "stop"
#: Characters of an error message kept on the run (its traceback is kept apart, in full).
ERROR_MAX_LENGTH = 2000


@dataclass(frozen=True)
class Outcome:
    """An end reason (an ``EndReason``, or ``STOPPED``) and the Run fields the end writes with it:
    only those the executor knows (``error``, ``traceback``, ``result``)."""

    reason: str
    fields: Mapping[str, Any] = field(default_factory=dict)


def failed(error: BaseException, *, reason: str = EndReason.FAILED) -> Outcome:
    """The outcome of code that raised ``error``: its one-line message, and its traceback apart."""
    return Outcome(reason, {"error": message(error),
                            "traceback": storable("".join(traceback.format_exception(error)))})


def message(error: BaseException) -> str:
    """``ValueError: disk on fire``: the exception's type and text, storable and capped."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return storable(text[:ERROR_MAX_LENGTH])
