"""What a command run executes: its argv and its environment, built as API.md says.

**argv.** Shell text runs as ``shell -c command sh ITEMS…``, so the text reads the parameters as
``"$@"``, ``$1``…; a list (``argv``) runs without a shell, the items appended. The items come from
the run's parameter values in the order the parameters are declared: ``arg`` one item, ``option``
the token then the value, ``flag`` the token when true; the token is the key when it starts with
``-``, else ``--key``. A value is never spliced into shell text: whatever it holds (quotes, ``;``,
``$(…)``) reaches the program as one argv entry.

**Environment**, later entries winning: the worker's environment, ``env_file``, ``env``, the
secrets file, parameters of kind ``env``, then ``TASKDECK_RUN_ID``, ``TASKDECK_TASK_ID`` and
``TASKDECK_ATTEMPT``. The secrets file is read here, at spawn, by the worker: its keys and values
go into the child's environment and nowhere else, and an error reading it names the field and
the path, never a line of it.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks_app.definitions.process import read_env_file


class SpawnRefused(Exception):
    """The run's process cannot be started as declared (an unreadable env or secrets file, a
    missing working directory); the message names the field and never holds a secret."""


@dataclass(frozen=True)
class CommandLine:
    argv: list[str]
    env: dict[str, str]


def build(
    process: Mapping[str, Any],
    *,
    parameters: Sequence[Mapping[str, Any]],
    values: Mapping[str, Any],
    run_env: Mapping[str, str],
    worker_env: Mapping[str, str] | None = None,
) -> CommandLine:
    """The argv and environment of one run of a command task with ``process`` settings, its
    declared ``parameters`` and the run's ``values``; ``run_env`` is Taskdeck's own variables."""
    items, parameter_env = parameter_items(parameters, values)
    if process.get("argv"):
        argv = [*process["argv"], *items]
    else:
        shell = process.get("shell") or "/bin/sh"
        argv = [shell, "-c", process["command"], Path(shell).name, *items]
    env = dict(os.environ if worker_env is None else worker_env)
    env.update(_env_file(process.get("env_file") or "", field="env_file"))
    env.update({str(key): str(value) for key, value in (process.get("env") or {}).items()})
    env.update(_env_file(process.get("secrets_file") or "", field="secrets_file"))
    env.update(parameter_env)
    env.update(run_env)
    working_dir = process.get("working_dir") or ""
    if working_dir and not Path(working_dir).is_dir():
        raise SpawnRefused(f"working_dir {working_dir!r} is not a directory on this worker.")
    return CommandLine(argv=argv, env=env)


def parameter_items(parameters: Sequence[Mapping[str, Any]], values: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The argv items and the environment entries the run's parameter values render as."""
    items: list[str] = []
    env: dict[str, str] = {}
    for parameter in parameters:
        key, kind = parameter["key"], parameter.get("kind", "option")
        value = values.get(key)
        if kind == "flag":
            if value is True:
                items.append(token(key))
            continue
        if value is None or value == "":
            continue  # not given and no default: nothing to pass
        if kind == "env":
            env[key] = as_text(value)
        elif kind == "arg":
            items.append(as_text(value))
        else:
            items.extend([token(key), as_text(value)])
    return items, env


def token(key: str) -> str:
    """``-v`` and ``--max-depth`` as written; any other key as ``--key``."""
    return key if key.startswith("-") else f"--{key}"


def as_text(value: Any) -> str:
    """A parameter value as a command line writes it: true/false, 3 (not 3.0), text as is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _env_file(path: str, *, field: str) -> dict[str, str]:
    if not path:
        return {}
    try:
        return read_env_file(path)
    except OSError as error:
        raise SpawnRefused(f"{field} {path!r} cannot be read on this worker ({error.strerror or error}).") from None
    except ValueError as error:  # names a line number, never a line
        raise SpawnRefused(f"{field} {path!r} is not a dotenv file: {error}.") from None
