"""What a schedule may hold: the one check of cron strings, intervals and time zones.

The API, the admin's forms, the command line, the definitions loader and the services all check
through these three functions, so a rule (and its ten-year cap) is written once. Each returns
the value as stored (a cron string with its spaces normalised) or raises ``InvalidValue``, which
names the field and says what is wrong; each caller words the value its own way (the command
line quotes its argument as typed, the loader names the task) around that one message.
"""
from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from croniter import CroniterBadDateError, croniter

from tasks_app import clock
from tasks_app.models import IntervalUnit, Task

#: The longest interval (ten years): past it the next run's time leaves datetime's range.
MAX_INTERVAL_SECONDS = 10 * 366 * 86400
#: The longest cron string and time zone name: their columns' (IANA names are far shorter).
MAX_CRON_LENGTH: int = Task._meta.get_field("cron_string").max_length  # type: ignore[assignment]
MAX_TIMEZONE_LENGTH: int = Task._meta.get_field("timezone").max_length  # type: ignore[assignment]


class InvalidValue(ValueError):
    """A schedule value that breaks a rule. ``problem`` has ``{value}`` where the value goes."""

    def __init__(self, field: str, value: Any, problem: str) -> None:
        super().__init__(problem.format(value=repr(value)))
        self.field = field
        self.value = value
        self.problem = problem

    def message(self, shown: str | None = None) -> str:
        """The problem with the value written as ``shown`` (its repr if not given)."""
        return self.problem.format(value=repr(self.value) if shown is None else shown)

    def sentence(self) -> str:
        """The message as a sentence, for a form field or an API error."""
        message = self.message()
        return message[:1].upper() + message[1:] + "."


def check_cron(expression: str) -> str:
    """Five fields (or an alias such as @daily) that parse and fire at least once, spaces
    normalised; at most MAX_CRON_LENGTH characters."""
    normalised = " ".join(expression.split()) if isinstance(expression, str) else expression
    if not isinstance(normalised, str) or not is_valid_cron(normalised):
        raise InvalidValue("cron_string", normalised,
                           '{value} is not a 5-field cron expression that fires (like "30 2 * * *" or @daily)')
    if len(normalised) > MAX_CRON_LENGTH:
        raise InvalidValue("cron_string", normalised,  # too long to echo back
                           f"the expression is {len(normalised)} characters long; at most {MAX_CRON_LENGTH} fit")
    return normalised


def check_interval(interval: Any, unit: Any) -> tuple[int, str]:
    """A whole number (a JSON or TOML integer, not a boolean) of at least 1 minutes, hours or
    days, at most ten years in all."""
    if unit not in IntervalUnit.values:
        raise InvalidValue("interval_unit", unit, f"{{value}} is not a unit: use {', '.join(IntervalUnit.values)}")
    if isinstance(interval, bool) or not isinstance(interval, int):
        raise InvalidValue("interval", interval, "{value} is not a whole number")
    if interval < 1:
        raise InvalidValue("interval", interval, "{value} must be at least 1")
    if interval * IntervalUnit(unit).seconds > MAX_INTERVAL_SECONDS:
        raise InvalidValue("interval", interval, "{value} is longer than 10 years")
    return interval, str(unit)


def check_timezone(name: Any) -> str:
    """An IANA time zone name zoneinfo can load."""
    if not is_valid_timezone(name):
        raise InvalidValue("timezone", name, "unknown time zone {value} (like UTC or Europe/Paris)")
    return name


def is_valid_cron(expression: str) -> bool:
    """Five fields (or an alias such as @daily) that parse and fire at least once from now."""
    fields = expression.split()
    if not fields or not (len(fields) == 5 or (len(fields) == 1 and fields[0].startswith("@"))):
        return False
    if not croniter.is_valid(expression):
        return False
    try:
        croniter(expression, clock.now()).get_next(datetime)
    except CroniterBadDateError:
        return False  # valid syntax that never fires, e.g. "0 0 30 2 *"
    return True


def is_valid_timezone(name: Any) -> bool:
    """An IANA name zoneinfo can load; anything else would fail at the task's first fire.

    Names are looked up as file paths: an over-long one fails with OSError, not a lookup error.
    """
    if not isinstance(name, str) or not name or len(name) > MAX_TIMEZONE_LENGTH:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return False
    return True
