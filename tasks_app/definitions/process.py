"""The one check of a command task's process settings (API.md "Process settings").

The definitions loader (``validate.build_definition``) and the admin's task form both call it, so
a value refused at start-up is refused in the admin with the same words. It returns the settings
complete and normalised (``Task.process``): defaults filled in, ``stop_signal`` as ``SIGTERM``,
``umask`` as ``0022``, so the worker that spawns the process reads them without guessing.

What it deliberately does not do: read the secrets file (only the worker reads it, at spawn, so
its keys and values never pass through the loader, the admin or their error messages), or keep
the values of ``env_file`` (read once to check that it parses; the worker reads it at spawn).
"""
from __future__ import annotations

import grp
import io
import math
import os
import pwd
import re
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import environ

from tasks_app import text
from tasks_app.conf import taskdeck_settings
from tasks_app.exceptions import DefinitionError
from tasks_app.models import LogOnFull

#: The process fields, in the order API.md lists them; in the definitions file they sit flat in
#: the task's table, on the Task they are the ``process`` dict.
PROCESS_FIELDS = (
    "command", "argv", "shell", "working_dir", "user", "umask", "env", "env_file", "secrets_file", "exit_codes",
    "stop_signal", "graceful_stop", "log_max_size", "log_on_full",
)

#: Seconds between ``stop_signal`` and SIGKILL when a definition leaves ``graceful_stop`` out (API.md).
DEFAULT_GRACEFUL_STOP = 5

#: The highest ``umask`` (every permission bit masked).
MAX_UMASK = 0o777

#: The largest log_max_size a column of bytes can count.
MAX_LOG_SIZE = 2**63 - 1

#: A line of a dotenv file as django-environ reads one (``Env.read_env``): ``[export ]NAME=value``.
_ENV_LINE = re.compile(r"\A(?:export )?[A-Za-z_0-9]+=.*\Z")


def process_defaults() -> dict[str, Any]:
    """What a command task that leaves a process field out gets; ``log_max_size`` follows
    TASKDECK_LOG_MAX_SIZE, read now (like a definition's timeout follows its setting)."""
    return {
        "command": None, "argv": None, "shell": "/bin/sh", "working_dir": "", "user": "", "umask": "", "env": {},
        "env_file": "", "secrets_file": "", "exit_codes": [0], "stop_signal": "SIGTERM",
        "graceful_stop": DEFAULT_GRACEFUL_STOP, "log_max_size": int(taskdeck_settings.LOG_MAX_SIZE),
        "log_on_full": LogOnFull.DROP_OLD.value,
    }


def check_process(task_id: str, fields: Mapping[str, Any], *, effective_uid: int | None = None) -> dict[str, Any]:
    """The complete, normalised process settings of one task, or DefinitionError naming the task
    and the first bad field (the loader's one line)."""
    settings, errors = validate_process(task_id, fields, effective_uid=effective_uid)
    if errors:
        raise errors[0]
    return settings


def validate_process(
    task_id: str, fields: Mapping[str, Any], *, effective_uid: int | None = None
) -> tuple[dict[str, Any], list[DefinitionError]]:
    """Every process field checked: the settings, and one DefinitionError per bad field (the admin
    puts each on its form field). A field given as None counts as left out.

    ``effective_uid`` is the uid the processes would be started by (this process's by default):
    ``user`` needs root, and a test says which uid it means rather than changing its own.
    """
    given = {name: value for name, value in fields.items() if value is not None}
    errors: list[DefinitionError] = []
    for name in given:
        if name not in PROCESS_FIELDS:
            errors.append(DefinitionError(task_id, text.storable(str(name)), "unknown process field"))
    settings = process_defaults()
    uid = os.geteuid() if effective_uid is None else effective_uid
    checks: dict[str, Callable[[Any], Any]] = {
        "command": _command, "argv": _argv, "shell": _shell, "working_dir": _string, "user": lambda value: _user(value, uid),
        "umask": _umask, "env": _env, "env_file": _env_file, "secrets_file": _string, "exit_codes": _exit_codes,
        "stop_signal": _stop_signal, "graceful_stop": _graceful_stop, "log_max_size": _log_max_size,
        "log_on_full": _log_on_full,
    }
    errors.extend(apply_checks(task_id, given, checks, settings))
    if "command" in given and "argv" in given:
        errors.append(DefinitionError(task_id, "argv", "give command (shell text) or argv (a list), not both"))
    elif "command" not in given and "argv" not in given:
        errors.append(DefinitionError(task_id, "command", "is required: shell text, or give argv (a list run "
                                                          "without a shell)"))
    if "argv" in given and "shell" in given:
        errors.append(DefinitionError(task_id, "shell", "applies to command only; argv runs without a shell"))
    return settings, in_field_order(errors, PROCESS_FIELDS)


def read_env_file(path: str | Path) -> dict[str, str]:
    """The variables of a dotenv file, read by django-environ's parser; OSError when it cannot be
    read, ValueError (naming a line number, never its text) when it is not UTF-8 or a line is not
    ``NAME=value``, a ``# comment`` or blank. Whoever reads an env_file (the loader to check it,
    the worker at spawn) should read it here, so both accept the same files."""
    raw = Path(path).read_bytes()
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise ValueError(f"not UTF-8 text (line {line})") from None
    kept = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not _ENV_LINE.match(line):
            raise ValueError(f"line {number} is not NAME=value")
        kept.append(line)
    values: dict[str, str] = {}
    reader = type("EnvFileReader", (environ.Env,), {"ENVIRON": values})  # into this dict, not os.environ
    reader.read_env(io.StringIO("\n".join(kept)), overwrite=True)
    return values


def apply_checks(task_id: str, given: Mapping[str, Any], checks: Mapping[str, Callable[[Any], Any]],
                 settings: dict[str, Any]) -> list[DefinitionError]:
    """Each field of ``given`` that ``checks`` names, checked into ``settings``; one
    DefinitionError per bad field (text that cannot be stored first, then the field's own check)."""
    errors = []
    for name, check in checks.items():
        if name not in given:
            continue
        bad = text.first_unstorable(given[name], location=name)
        try:
            if bad is not None:
                raise InvalidField(bad.clause, where=bad.location[len(name):])
            settings[name] = check(given[name])
        except InvalidField as error:
            errors.append(DefinitionError(task_id, name + error.where, error.message))
    return errors


class InvalidField(Exception):
    """One field's value is bad: ``message`` follows its name; ``where`` locates it inside."""

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def in_field_order(errors: list[DefinitionError], fields: Sequence[str]) -> list[DefinitionError]:
    """``errors`` in the order ``fields`` lists their fields (API.md's: the loader reports the
    first); an error on a field not listed first of all."""
    def position(error: DefinitionError) -> int:
        base = re.split(r"[.\[]", error.field, maxsplit=1)[0]
        return fields.index(base) if base in fields else -1
    return sorted(errors, key=position)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidField("must be a string")
    return value


def _command(value: Any) -> str:
    if not _string(value).strip():
        raise InvalidField("must not be empty")
    return value


def _argv(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise InvalidField('must be a non-empty list of strings, like ["du", "-s", "/srv"]')
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidField("must be a string", where=f"[{index}]")
    if not value[0].strip():
        raise InvalidField("must name the program to run", where="[0]")
    return list(value)


def _shell(value: Any) -> str:
    if not _string(value).strip():
        raise InvalidField("must name a shell, like /bin/sh")
    return value


def _user(value: Any, uid: int) -> str:
    """``name``, ``name:group`` or numeric ids; names must exist here, and only root can switch."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidField("must be a string: name, name:group or a numeric id")
    if not value:
        return ""
    if uid != 0:
        raise InvalidField(f"needs the worker to run as root (this process runs as uid {uid})")
    user, _, group = value.partition(":")
    if not user or (":" in value and not group):
        raise InvalidField(f"{value!r} is not name, name:group or a numeric id")
    _known_id(user, pwd.getpwnam, "user")
    if group:
        _known_id(group, grp.getgrnam, "group")
    return value


def _known_id(name: str, look_up: Callable[[str], Any], what: str) -> None:
    if name.isdigit():
        return  # a numeric id needs no entry in /etc/passwd or /etc/group
    try:
        look_up(name)
    except KeyError:
        raise InvalidField(f"unknown {what} {name!r}") from None


def _umask(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidField('must be an octal string, like "022"')
    digits = value.strip().lower().removeprefix("0o")
    if not digits:
        if value.strip():
            raise InvalidField(f'{value!r} is not an octal umask, like "022"')
        return ""
    if not re.fullmatch(r"[0-7]{1,4}", digits) or int(digits, 8) > MAX_UMASK:
        raise InvalidField(f'{value!r} is not an octal umask from "000" to "777"')
    return f"{int(digits, 8):04o}"


def _env(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidField('must be a table of strings, like { TARGET = "/srv" }')
    for key, item in value.items():
        if not isinstance(key, str) or not key or "=" in key:
            raise InvalidField(f"{text.storable(str(key))!r} is not a variable name (not empty, no '=')")
        if not isinstance(item, str):
            raise InvalidField("must be a string", where=f".{key}")
    return dict(value)


def _env_file(value: Any) -> str:
    if not _string(value):
        return ""
    try:
        read_env_file(value)
    except FileNotFoundError:
        raise InvalidField(f"no such file: {value!r}") from None
    except OSError as error:
        raise InvalidField(f"cannot read {value!r}: {error.strerror or error}") from None
    except ValueError as error:
        raise InvalidField(f"{value!r} is not a dotenv file: {error}") from None
    return value


def _exit_codes(value: Any) -> list[int]:
    if (not isinstance(value, list) or not value
            or any(isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255 for code in value)):
        raise InvalidField("must be a non-empty list of exit statuses from 0 to 255, like [0, 1]")
    return sorted(set(value))


def _stop_signal(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidField('must be a signal name, like "SIGTERM" or "TERM"')
    name = value.strip().upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return signal.Signals[name].name  # an alias (SIGIOT) is stored as its signal's name (SIGABRT)
    except KeyError:
        raise InvalidField(f"unknown signal {value!r} (like SIGTERM, SIGINT, SIGHUP)") from None


def _graceful_stop(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidField("must be a number of seconds >= 0")
    return value


def _log_max_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LOG_SIZE:
        raise InvalidField("must be a whole number of bytes >= 1")
    return value


def boolean(value: Any) -> bool:
    """The check of a field that is true or false (a service's autostart, a watcher's recursive)."""
    if not isinstance(value, bool):
        raise InvalidField("must be true or false")
    return value


def choice(values: Sequence[str]) -> Callable[[Any], str]:
    """The check of a field that takes one of ``values``."""
    def check(value: Any) -> str:
        if value not in values:
            raise InvalidField(f"must be one of {', '.join(values)}")
        return str(value)
    return check


_log_on_full = choice(LogOnFull.values)
