"""A command task's secrets file: read by the worker at spawn, into the child's environment and
nowhere else. A planted key and value are looked for everywhere Taskdeck writes or shows
something: the API, the admin, the events, the Run and Task rows, Taskdeck's own logs (a worker
logging at DEBUG) and the error messages of runs that failed around them."""
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from tasks_app.definitions.process import check_process
from tasks_app.models import EndReason, Event, Run, Task, TaskKind

from .api.conftest import make_key
from .conftest import ROOT, run_until_ended
from .execution.conftest import trigger
from .factories import log_of, make_task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("qcluster")]

KEY = "PLANTED_KEY_Q9ZX"
VALUE = "planted-value-7d1f3c"


@pytest.fixture
def debug_worker(process_env, tmp_path):
    """A second worker, logging everything it does at DEBUG (the session's worker logs warnings):
    whichever of the two takes a run, its log is read."""
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen([sys.executable, "manage.py", "worker"], cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT, env={**process_env, "LOG_LEVEL": "DEBUG"})
    yield log_path
    worker.terminate()
    worker.wait(30)


def command(script: Path, secrets: Path, **process: object) -> Task:
    return make_task(kind=TaskKind.COMMAND, callable="", process=check_process(
        "secretive", {"argv": ["/bin/sh", str(script)], "secrets_file": str(secrets), **process}))


def test_a_secret_reaches_the_command_and_nothing_of_taskdeck_shows_it(tmp_path, live_server, qcluster, debug_worker):
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"{KEY}={VALUE}\n")
    script = tmp_path / "job.sh"  # the command's text is visible to operators: the key is named in a file
    script.write_text(f'echo "the secret has ${{#{KEY}}} characters"\nexit 3\n')
    ran = run_until_ended(trigger(command(script, secrets)), timeout=30)
    assert (ran.end_reason, ran.exit_code, ran.error) == (EndReason.FAILED, 3, "exit code 3")
    assert log_of(ran)[1] == f"the secret has {len(VALUE)} characters\n".encode()

    broken = tmp_path / "broken.env"
    broken.write_text(f"{KEY}={VALUE}\nthis line {VALUE} is not NAME=value\n")
    refused = run_until_ended(trigger(command(script, broken)), timeout=30)
    assert refused.end_reason == EndReason.FAILED and "line 2" in refused.error and str(broken) in refused.error

    unreadable = run_until_ended(trigger(command(script, tmp_path / "missing.env")), timeout=30)
    assert unreadable.end_reason == EndReason.FAILED and "secrets_file" in unreadable.error

    seen = everything_shown(live_server.url, [ran, refused, unreadable])
    seen["the worker's DEBUG log"] = debug_worker.read_text(errors="replace")
    seen["the session worker's log"] = qcluster.log()
    assert len(seen) > 10
    leaks = [where for where, text in seen.items() if KEY in text or VALUE in text]
    assert leaks == []
    assert "exit code 3" in seen["GET /api/runs/%s" % ran.pk]  # the grep reads what it means to


def everything_shown(base: str, runs: list[Run]) -> dict[str, str]:
    """What the API, the admin and the database hold about ``runs`` and their task, by where."""
    key = make_key("tasks:read")
    shown: dict[str, str] = {}
    api = requests.Session()
    api.headers["X-API-Key"] = key
    paths = ["/api/tasks", "/api/runs", "/api/health"]
    for run in runs:
        paths += [f"/api/tasks/{run.task_id}", f"/api/runs/{run.pk}", f"/api/runs/{run.pk}/log",
                  f"/api/runs/{run.pk}/activity"]
    for path in paths:
        response = api.get(base + path, timeout=10)
        assert response.status_code in (200, 503), (path, response.status_code)
        shown[f"GET {path}"] = response.text
    admin = Client()
    admin.force_login(User.objects.create_superuser("auditor", password="x"))
    pages = ["/admin/", "/admin/tasks_app/task/", "/admin/tasks_app/run/"]
    for run in runs:
        pages += [reverse("admin:tasks_app_task_change", args=[quote(run.task_id)]),
                  reverse("admin:tasks_app_run_change", args=[quote(run.pk)])]
    for page in pages:
        response = admin.get(page)
        assert response.status_code == 200, (page, response.status_code)
        shown[f"admin {page}"] = response.content.decode()
    shown["events"] = "\n".join(repr(row) for row in Event.objects.values())
    shown["runs"] = "\n".join(repr(row) for row in Run.objects.filter(pk__in=[run.pk for run in runs]).values())
    shown["tasks"] = "\n".join(repr(row) for row in Task.objects.filter(pk__in={run.task_id for run in runs}).values())
    return shown
