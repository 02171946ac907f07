"""The API against its own OpenAPI schema: schemathesis over every operation of a live `serve`.

A real ``manage.py serve`` (web + worker + scheduler, the example tasks synced at start) runs on a
free 127.0.0.1 port against a private, freshly migrated SQLite database. Schemathesis loads the
schema that server generates (``/api/schema/?format=json``), sends generated requests (valid and
invalid) to every operation with a ``tasks:manage`` API key in ``X-API-Key``, and checks each
response:

- ``not_a_server_error``: no 5xx;
- ``status_code_conformance``: the status code is one the operation documents;
- ``content_type_conformance``: the Content-Type is one documented for that status code
  (problem documents are ``application/problem+json``, so the schema must say so);
- ``response_schema_conformance``: the body validates against the documented schema.

Why schemathesis's pytest integration and not the ``schemathesis run`` CLI: the server, its
database and its key only exist once a fixture has run, and ``schemathesis.pytest.from_fixture``
loads the schema from a fixture at test time, then reports each operation as a pytest subtest
(``test_api_conforms_to_its_schema (label='GET /api/tasks/')``) with the failing checks, the
response and a ``curl`` line to reproduce it. The CLI would need its output parsed or dumped to
say as much. One shim is needed: schemathesis 4.32.5 relabels ``node._nodeid`` around each
operation, an attribute pytest 9.2 no longer has (``_pytest_9_2_node_id`` below gives it one).

Bounds: at most ``MAX_EXAMPLES`` generated cases per operation in the fuzzing phase, plus the
finite examples and coverage phases; no stateful phase; a 10 s timeout per request. Generation is
deterministic, so a failure in CI reproduces exactly (the cases are the same on every run). No example
database is kept; Hypothesis's pytest plugin still caches source constants in ./.hypothesis/ (which
ignores itself in git). Requests only go to the loopback server this module starts, and that
server is stopped with SIGTERM at the end.

To make cases reach real objects rather than only 404s, path parameters are, about half the time,
swapped for the ids of the example tasks and of runs triggered when the server started
(``_known_ids``); the rest of the time they stay whatever schemathesis generated.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from ..conftest import ROOT, wait_until
from ..processes import Project, free_port, stop_serve
from .conftest import FUZZ_CASES

#: Cases per operation: 25 in the suite; ``make fuzz`` asks for more (TASKDECK_FUZZ_EXAMPLES) and
#: for schemathesis's random mode (TASKDECK_FUZZ_RANDOM=1: new cases every run, not the same ones).
MAX_EXAMPLES = int(os.environ.get("TASKDECK_FUZZ_EXAMPLES", "25"))
DETERMINISTIC = not os.environ.get("TASKDECK_FUZZ_RANDOM")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class LiveServer:
    base_url: str
    key: str
    task_ids: list[str]
    run_ids: list[str]


@pytest.fixture(scope="module")
def live_taskdeck(process_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`manage.py serve` on 127.0.0.1 with its own database and a tasks:manage key."""
    folder = tmp_path_factory.mktemp("schemathesis")
    definitions = folder / "taskdeck.toml"  # none beyond the example tasks, whatever the developer has
    definitions.write_text("")
    project = Project(folder / "db.sqlite3", {**process_env, "TASKDECK_DEFINITIONS": str(definitions)})
    project.manage("migrate", "--noinput", "-v0")
    created = project.manage("create_api_key", "--name", "schemathesis", "--scopes", "tasks:manage")
    key = created.stdout.strip().splitlines()[-1]  # the key is the last line
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = folder / "serve.log"
    serve = _start_serve(project, port, log)
    try:
        yield LiveServer(base_url, key, *_known_ids(base_url, key))
    finally:
        stop_serve(serve, log=log)


def _start_serve(project: Project, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Project.start_serve, but a slow first answer (a loaded machine) is waited for, not an error."""
    with log.open("ab") as output:
        serve = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=project.env,
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

    def up() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
        except requests.RequestException:
            assert serve.poll() is None, log.read_text(errors="replace")
            return False

    try:
        wait_until(up, timeout=60, interval=0.2, what="serve to answer")
    except BaseException:
        stop_serve(serve, log=log)
        raise
    return serve


def _known_ids(base_url: str, key: str) -> tuple[list[str], list[str]]:
    """The example tasks' ids, and the ids of a few runs (ended and, where the timing allows, live)."""
    session = requests.Session()
    session.headers["X-API-Key"] = key
    response = session.get(f"{base_url}/api/tasks", timeout=10)
    assert response.status_code == 200, response.text  # else every case would be a vacuous 401
    task_ids = sorted(task["id"] for task in response.json()["tasks"])
    assert task_ids, "serve synced no example tasks"
    run_ids = []
    for task_id in task_ids:
        queued = session.post(f"{base_url}/api/tasks/{task_id}/run", json={}, timeout=10)
        if queued.status_code == 202:
            run_ids.append(queued.json()["run_id"])
    assert run_ids, "no example task could be triggered"

    def first_ended() -> bool:
        return any(session.get(f"{base_url}/api/runs/{run_id}", timeout=10).status_code == 200 for run_id in run_ids)

    wait_until(first_ended, timeout=30, interval=0.2, what="an example run to end")
    return task_ids, run_ids


@pytest.fixture(scope="module")
def api_schema(live_taskdeck: LiveServer) -> Any:
    config = SchemathesisConfig.from_dict({
        "base-url": live_taskdeck.base_url,
        "headers": {"X-API-Key": live_taskdeck.key},
        "request-timeout": 10,
        "wait-for-schema": 10,
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none", "deterministic": DETERMINISTIC},
        "phases": {"stateful": {"enabled": False}},
    })
    schema = schemathesis.openapi.from_url(f"{live_taskdeck.base_url}/api/schema/?format=json", config=config)

    @schema.hook("flatmap_path_parameters")
    def known_ids(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        """Half the time, a task or run that exists instead of the generated id."""
        options: dict[str, list[str]] = {"id": live_taskdeck.task_ids, "run_id": live_taskdeck.run_ids}
        strategies = {
            name: st.one_of(st.just(value), st.sampled_from(options[name])) if options.get(name) else st.just(value)
            for name, value in (path_parameters or {}).items()
        }
        return st.fixed_dictionaries(strategies)

    return schema


# A 200 from /api/events is an event stream that never ends; tests/api/test_events.py covers it.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/api/events")


@pytest.fixture(autouse=True)
def _pytest_9_2_node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis (4.32.5) reads and relabels ``node._nodeid``, which pytest 9.2 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    FUZZ_CASES[f"schemathesis {case.operation.label}"] += 1
    case.call_and_validate(checks=CHECKS)
