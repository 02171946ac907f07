"""A docker compose file's services as service tasks (``manage.py import_compose``).

Each compose service becomes one service task whose instances each run, through a shell so the
instance's index is expanded when it starts::

    exec docker compose -f FILE -p PROJECT run --rm --no-deps --service-ports \\
        --name PROJECT_SERVICE_"$TASKDECK_INSTANCE_INDEX" SERVICE

(API.md "Compose and other imports"; every part but the index quoted with ``shlex.quote``).
Docker carries everything about the container (image, build, command, environment, ports,
volumes, networks, resources): the task carries what decides when and how many run:

- ``instances`` from ``deploy.replicas`` (else ``scale``; default 1); 0 imports the service with
  ``autostart = false``, and so does a service in ``profiles`` (compose starts it only with its
  profile);
- ``graceful_stop`` from ``stop_grace_period`` (compose durations: ``10s``, ``1m30s``, ``500ms``;
  compose's default, 10 s, when left out), ``stop_signal`` from ``stop_signal`` (``docker compose
  run`` passes the signal it gets on to the container, since docker/compose#10633);
- ``depends_on`` from ``depends_on`` (list or mapping form), keeping only the services imported
  with it: the others are dropped and said so;
- ``restart = "on_failure"``: the file's own ``restart:`` is ignored, as ``docker compose run``
  ignores it;
- ``compose`` provenance: the file (absolute), the project, the service.

The project is ``--project``, else the file's ``name:``, else its folder's name normalised as
docker compose does (lowercase; only a-z, 0-9, ``_`` and ``-``; leading ``_`` and ``-`` dropped).
A task's id is ``PROJECT.SERVICE``, lowercase (a project name has no dot, so the two parts never
run together). Nothing here needs Docker: running the tasks does.

Not read: variables (``${VAR}``) in the values read here, ``extends``, ``include`` and override
files; each is said when met, and a value that needs a variable fails in one line.
"""
from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tasks_app.definitions.imports.entries import Entry, Reading, read_text
from tasks_app.exceptions import ImportFileError

#: A project name docker compose accepts as given (``-p``, ``name:``).
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
#: A service name compose accepts.
SERVICE_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
#: A compose duration: numbers with units, like Go's time.ParseDuration reads them.
DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
#: Seconds docker gives a container to stop when ``stop_grace_period`` is left out.
COMPOSE_GRACE_PERIOD = 10
#: The override files docker compose reads beside the file, when it is given no ``-f``.
OVERRIDE_FILES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml",
                  "docker-compose.override.yml")
#: Keys of a service that change how it runs and that neither the task nor ``docker compose run`` carries.
LOST_KEYS = {
    "restart": "ignored; Taskdeck restarts an instance that fails (restart = on_failure)",
    "healthcheck": "runs in the container; Taskdeck neither waits for it nor restarts on it",
    "container_name": "each instance is named PROJECT_SERVICE_INDEX",
    "extends": "what it brings (deploy.replicas, stop_grace_period, depends_on...) is not read",
}


def read_compose(path: str | Path, *, project: str | None = None, services: Sequence[str] = ()) -> Reading:
    """The compose file at ``path`` as one entry per service (those in ``services`` when given;
    the others skipped), or ImportFileError naming the file and what is wrong."""
    path = Path(os.path.abspath(path))
    document = _load(path)
    declared = document.get("services")
    if not isinstance(declared, Mapping) or not declared:
        raise ImportFileError(str(path), "has no services (a compose file declares them under services:)")
    for name in declared:
        if not isinstance(name, str) or not SERVICE_NAME.match(name):
            raise ImportFileError(str(path), f"services: {str(name)!r} is not a service name (letters, digits, . _ -)")
    unknown = [name for name in services if name not in declared]
    if unknown:
        raise ImportFileError(str(path), f"has no service {unknown[0]!r} (it has {', '.join(declared)})")
    project_name = _project_name(path, document, project)
    selected = set(services or declared)
    imported = [name for name in declared if name in selected]
    entries = []
    for name, service in declared.items():
        task_id = f"{project_name}.{name.lower()}"
        if name not in selected:
            entries.append(Entry(name, f"services.{name}", task_id, skipped="not named by --service"))
            continue
        if service is None:
            service = {}
        if not isinstance(service, Mapping):
            raise ImportFileError(str(path), f"services.{name}: must be a mapping of settings")
        entries.append(_service_entry(path, project_name, name, service, imported=imported))
    return Reading(path, entries, notes=_file_notes(path, document), compose_project=project_name)


def compose_command(file: Path, project: str, service: str) -> str:
    """The shell text an instance runs: API.md's ``docker compose ... run`` with the instance's
    index expanded by the shell, every other part quoted; ``exec`` so the stop signal reaches
    docker itself."""
    fixed = ["docker", "compose", "-f", str(file), "-p", project, "run", "--rm", "--no-deps", "--service-ports", "--name"]
    name = shlex.quote(f"{project}_{service}_") + '"$TASKDECK_INSTANCE_INDEX"'
    return " ".join(["exec", *map(shlex.quote, fixed), name, shlex.quote(service)])


def compose_seconds(value: Any, *, where: str) -> float | int:
    """A compose duration (``1m30s``, ``10s``, ``1.5s``, ``500ms``; a bare number is seconds) in
    seconds: a whole number when it is one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidValue(where, f"{value!r} is not a duration (like 10s or 1m30s)")
    if isinstance(value, str):
        text = value.strip()
        if "$" in text:
            raise InvalidValue(where, f"{value!r} uses a variable, which the import does not expand")
        if text == "0":
            return 0
        if not text or DURATION.sub("", text):
            raise InvalidValue(where, f"{value!r} is not a duration (like 10s or 1m30s)")
        seconds = sum(float(number) * DURATION_UNITS[unit] for number, unit in DURATION.findall(text))
    else:
        seconds = float(value)
    if seconds < 0:
        raise InvalidValue(where, f"{value!r} is not a duration (like 10s or 1m30s)")
    seconds = round(seconds, 6)
    return int(seconds) if seconds.is_integer() else seconds


class InvalidValue(Exception):
    """A value of the file that cannot be read; ``where`` is its key path."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def _load(path: Path) -> Mapping[str, Any]:
    text = read_text(path)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ImportFileError(str(path), f"not valid YAML: {problem}{at}") from None
    if not isinstance(document, Mapping):
        raise ImportFileError(str(path), "is not a compose file (its top level is not a mapping)")
    return document


def _project_name(path: Path, document: Mapping[str, Any], given: str | None) -> str:
    """``--project``, else ``name:``, else the folder's name normalised (docker compose's order)."""
    if given is not None:
        if not PROJECT_NAME.match(given):
            raise ImportFileError(str(path), f"--project {given!r}: a project name is lowercase letters, digits, "
                                             "_ and -, starting with a letter or digit")
        return given
    name = document.get("name")
    if name is not None:
        if isinstance(name, str) and "$" in name:
            raise ImportFileError(str(path), f"name: {name!r} uses a variable, which the import does not expand; "
                                             "give --project")
        if not isinstance(name, str) or not PROJECT_NAME.match(name):
            raise ImportFileError(str(path), f"name: {name!r} is not a project name (lowercase letters, digits, _ "
                                             "and -, starting with a letter or digit)")
        return name
    normalised = re.sub(r"[^a-z0-9_-]", "", path.parent.name.lower()).lstrip("_-")
    if not normalised:
        raise ImportFileError(str(path), f"its folder's name {path.parent.name!r} makes no project name; give --project")
    return normalised


def _service_entry(path: Path, project: str, name: str, service: Mapping[str, Any], *,
                   imported: Sequence[str]) -> Entry:
    where = f"services.{name}"
    lost = [f"{key}: {why}" for key, why in LOST_KEYS.items() if key in service and not _disabled(key, service[key])]
    deploy = service.get("deploy") or {}
    if not isinstance(deploy, Mapping):
        raise ImportFileError(str(path), f"{where}.deploy: must be a mapping of settings")
    if deploy.get("restart_policy") is not None:
        lost.append(f"deploy.restart_policy: {LOST_KEYS['restart']}")
    fields: dict[str, Any] = {
        "kind": "service", "title": f"{name} ({project})", "type": "compose",
        "description": f"docker compose service {name} of project {project}, imported from {path}.",
        "command": compose_command(path, project, name), "restart": "on_failure",
    }
    try:
        replicas = _replicas(service, deploy, where=where)
        fields["graceful_stop"] = compose_seconds(service.get("stop_grace_period", COMPOSE_GRACE_PERIOD),
                                                  where=f"{where}.stop_grace_period")
    except InvalidValue as error:
        raise ImportFileError(str(path), f"{error.where}: {error.message}") from None
    fields["instances"] = max(replicas, 1)
    if replicas == 0:
        fields["autostart"] = False
        lost.append("deploy.replicas: 0, so imported with autostart = false (one instance when started)")
    if service.get("profiles"):
        fields["autostart"] = False
        lost.append("profiles: imported with autostart = false (compose starts it only with its profile)")
    if service.get("stop_signal") is not None:
        fields["stop_signal"] = service["stop_signal"]
    depends_on, dropped = _depends_on(path, where, service.get("depends_on"), imported=imported)
    if depends_on:
        fields["depends_on"] = [f"{project}.{item.lower()}" for item in depends_on]
    lost.extend(dropped)
    if replicas > 1 and _publishes_fixed_ports(service.get("ports")):
        lost.append(f"ports: the {replicas} instances each publish the same host ports (--service-ports); "
                    "only the first to start can bind them")
    fields["compose"] = {"file": str(path), "project_name": project, "service": name}
    return Entry(name, where, f"{project}.{name.lower()}", fields=fields, lost=lost)


def _disabled(key: str, value: Any) -> bool:
    """A healthcheck turned off (``disable: true`` or ``test: ["NONE"]``) loses nothing."""
    if key != "healthcheck" or not isinstance(value, Mapping):
        return False
    test = value.get("test")
    return value.get("disable") is True or test == "NONE" or (isinstance(test, list) and test[:1] == ["NONE"])


def _replicas(service: Mapping[str, Any], deploy: Mapping[str, Any], *, where: str) -> int:
    """``deploy.replicas``, else ``scale``, else 1; compose refuses the two when they differ."""
    values = {}
    for key, value in ((f"{where}.deploy.replicas", deploy.get("replicas")), (f"{where}.scale", service.get("scale"))):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            interpolated = isinstance(value, str) and "$" in value
            raise InvalidValue(key, f"{value!r} uses a variable, which the import does not expand" if interpolated
                               else f"{value!r} is not a whole number of containers")
        values[key] = value
    if len(set(values.values())) > 1:
        raise InvalidValue(where, "deploy.replicas and scale differ (docker compose refuses that too)")
    return next(iter(values.values()), 1)


def _depends_on(path: Path, where: str, value: Any, *, imported: Sequence[str]) -> tuple[list[str], list[str]]:
    """The services it waits for that are imported too, and what was dropped or changes meaning."""
    if value is None:
        return [], []
    if isinstance(value, Mapping):
        items = dict(value)
    elif isinstance(value, list):
        items = {item: None for item in value}
    else:
        raise ImportFileError(str(path), f"{where}.depends_on: must be a list of services or a mapping")
    kept, lost = [], []
    for name, settings in items.items():
        if not isinstance(name, str):
            raise ImportFileError(str(path), f"{where}.depends_on: {name!r} is not a service name")
        if settings is not None and not isinstance(settings, Mapping):
            raise ImportFileError(str(path), f"{where}.depends_on.{name}: must be a mapping (condition, ...)")
        if name not in imported:
            lost.append(f"depends_on: {name} is not imported with it, so dropped")
            continue
        kept.append(name)
        condition = (settings or {}).get("condition", "service_started")
        if condition == "service_completed_successfully":
            lost.append(f"depends_on: {name} condition {condition}: Taskdeck waits for {name} to be healthy "
                        "(up healthy_after seconds), not to have exited")
    return kept, lost


def _publishes_fixed_ports(ports: Any) -> bool:
    """Whether a service's ``ports`` bind a fixed host port (``8080:80``, ``127.0.0.1:8080:80``,
    ``{published: 8080}``), which two containers cannot both bind."""
    for port in ports or []:
        if isinstance(port, Mapping):
            published = port.get("published")
            if published not in (None, "") and "-" not in str(published):
                return True
            continue
        text = str(port).split("/", 1)[0]
        if text.startswith("["):  # an IPv6 host address: [::1]:8080:80
            text = text.partition("]:")[2]
            host = text.rpartition(":")[0] if ":" in text else ""
        else:
            parts = text.split(":")
            host = parts[-2] if len(parts) >= 2 else ""
        if host and "-" not in host:
            return True
    return False


def _file_notes(path: Path, document: Mapping[str, Any]) -> list[str]:
    notes = []
    if document.get("include"):
        notes.append("include: not carried over (import each included file on its own)")
    for name in OVERRIDE_FILES:
        if (path.parent / name).exists():
            notes.append(f"{name} beside it: not read, by the import or by the tasks (docker compose reads it only "
                         "when given no -f)")
    return notes
