"""manage.py import_compose (definitions/imports/compose.py): a compose file's services as
service tasks, written to the database or to a definitions file, and run by the real supervisor
through a stand-in ``docker``."""
from __future__ import annotations

import os
import shlex
import shutil
import time
from pathlib import Path

import pytest
from django.core.management import CommandError

from tasks_app import services
from tasks_app.definitions.imports.compose import InvalidValue, compose_seconds, read_compose
from tasks_app.definitions.imports.entries import build_definitions
from tasks_app.definitions.load import load_definitions_file
from tasks_app.definitions.process import process_defaults
from tasks_app.definitions.service import service_defaults
from tasks_app.models import EndReason, InstanceState, Run, RunStatus, ServiceInstance, Task
from tasks_app.supervision.supervisor import Supervisor

from ..factories import log_of, make_task
from .conftest import FILES, call

MEDIA = FILES / "media" / "docker-compose.yml"


def command_of(file: Path, project: str, service: str) -> str:
    return (f"exec docker compose -f {shlex.quote(str(file))} -p {project} run --rm --no-deps --service-ports "
            f'--name {project}_{service}_"$TASKDECK_INSTANCE_INDEX" {service}')


@pytest.mark.django_db
class TestIntoTheDatabase:
    def test_each_service_becomes_a_service_task(self, settings):
        settings.TASKDECK = {**settings.TASKDECK, "LOG_MAX_SIZE": 5000}
        call("import_compose", str(MEDIA))

        worker = Task.objects.get(pk="media.worker")
        assert (worker.source, worker.kind, worker.title, worker.type, worker.manual_run, worker.timeout) == (
            "compose", "service", "worker (media)", "compose", False, None)
        assert worker.description == f"docker compose service worker of project media, imported from {MEDIA}."
        assert worker.process == {
            **process_defaults(), **service_defaults(),
            "command": command_of(MEDIA, "media", "worker"), "graceful_stop": 0.5, "instances": 3,
            "restart": "on_failure", "depends_on": ["media.db", "media.migrate"],
            "compose": {"file": str(MEDIA), "project_name": "media", "service": "worker"},
        }
        assert Task.objects.get(pk="media.db").process["graceful_stop"] == 90  # 1m30s
        cache = Task.objects.get(pk="media.cache").process
        assert (cache["graceful_stop"], cache["stop_signal"], cache["instances"]) == (10, "SIGINT", 1)  # compose's 10 s
        web = Task.objects.get(pk="media.web").process
        assert (web["depends_on"], web["autostart"], web["instances"]) == (["media.db", "media.cache"], True, 1)
        migrate = Task.objects.get(pk="media.migrate")
        assert (migrate.process["autostart"], migrate.enabled) == (False, True)  # a profile's service

    def test_the_table_says_what_became_of_each_service_and_what_was_not_carried_over(self):
        assert call("import_compose", str(MEDIA)).splitlines() == [
            "SERVICE  TASK           RESULT   NOT CARRIED OVER",
            "db       media.db       created  restart: ignored; Taskdeck restarts an instance that fails (restart = on_failure)",
            "                                 healthcheck: runs in the container; Taskdeck neither waits for it nor restarts on it",
            "cache    media.cache    created  -",
            "web      media.web      created  -",
            "worker   media.worker   created  depends_on: migrate condition service_completed_successfully: Taskdeck waits "
            "for migrate to be healthy (up healthy_after seconds), not to have exited",
            "                                 ports: the 3 instances each publish the same host ports (--service-ports); "
            "only the first to start can bind them",
            "migrate  media.migrate  created  profiles: imported with autostart = false (compose starts it only with its "
            "profile)",
            "5 task(s) to the database (source compose): 5 created.",
        ]

    @pytest.mark.postgres  # unchanged read back from a JSON column, and the provenance looked up in one
    def test_a_re_import_updates_in_place_and_reports_a_service_gone_from_the_file(self, tmp_path):
        folder = tmp_path / "media"
        folder.mkdir()
        file = folder / "compose.yaml"
        shutil.copy(MEDIA, file)
        call("import_compose", str(file))
        services.set_operator_fields("media.web", enabled=False)
        created = Task.objects.get(pk="media.worker").created_at
        assert call("import_compose", str(file)).splitlines()[-1] == (
            "5 task(s) to the database (source compose): 5 unchanged.")

        text = file.read_text().replace("replicas: 3", "replicas: 4")
        file.write_text(text[:text.index("\n  migrate:\n") + 1])  # migrate leaves the file
        output = call("import_compose", str(file)).splitlines()
        assert output[-2:] == [
            "Imported before and no longer in the file, left as they are (delete them in the admin if they are gone): "
            "media.migrate",
            "4 task(s) to the database (source compose): 3 unchanged, 1 updated."]
        assert any(line.startswith("worker   media.worker  updated") for line in output)
        worker = Task.objects.get(pk="media.worker")
        assert (worker.process["instances"], worker.created_at) == (4, created)
        assert worker.process["depends_on"] == ["media.db"]  # migrate is not imported any more
        assert not Task.objects.get(pk="media.web").enabled  # the operator's change is kept
        assert Task.objects.filter(pk="media.migrate", removed_at=None).exists()

    def test_only_the_services_named_are_imported_and_their_other_dependencies_dropped(self):
        output = call("import_compose", str(MEDIA), "--service", "web", "--service", "db").splitlines()
        assert output[3:7] == [
            "cache    -          skipped  skipped: not named by --service",
            "web      media.web  created  depends_on: cache is not imported with it, so dropped",
            "worker   -          skipped  skipped: not named by --service",
            "migrate  -          skipped  skipped: not named by --service",
        ]
        assert output[-1] == "2 task(s) to the database (source compose): 2 created; 3 skipped."
        assert sorted(Task.objects.values_list("id", flat=True)) == ["media.db", "media.web"]
        assert Task.objects.get(pk="media.web").process["depends_on"] == ["media.db"]

    def test_a_task_of_another_source_is_never_overwritten(self):
        make_task(id="media.web", source="file", title="Declared")
        with pytest.raises(CommandError) as raised:
            call("import_compose", str(MEDIA))
        assert str(raised.value) == ("Task 'media.web' already exists, from definitions file (source file); an import "
                                     "of source compose does not overwrite it.")
        assert list(Task.objects.values_list("id", "title")) == [("media.web", "Declared")]


@pytest.mark.parametrize(("folder", "text", "arguments", "project"), [
    ("media", "services: {web: {image: x}}", [], "media"),
    ("My Media_App.v2", "services: {web: {image: x}}", [], "mymedia_appv2"),
    ("__x", "services: {web: {image: x}}", [], "x"),
    ("media", "name: films\nservices: {web: {image: x}}", [], "films"),
    ("media", "name: films\nservices: {web: {image: x}}", ["--project", "tv-2"], "tv-2"),
])
def test_the_project_name_is_docker_composes(tmp_path, folder, text, arguments, project):
    path = tmp_path / folder / "compose.yaml"
    path.parent.mkdir()
    path.write_text(text)
    reading = read_compose(path, project=arguments[1] if arguments else None)
    [entry] = reading.entries
    assert (reading.compose_project, entry.task_id) == (project, f"{project}.web")
    assert entry.fields["command"] == command_of(path, project, "web")


def test_a_path_with_spaces_and_quotes_is_quoted_for_the_shell(tmp_path):
    path = tmp_path / "it's here" / "compose.yaml"
    path.parent.mkdir()
    path.write_text("services:\n  Web.API: {image: x}\n")
    [entry] = read_compose(path, project="media").entries
    assert entry.task_id == "media.web.api"
    assert entry.fields["command"] == (
        f"exec docker compose -f '{tmp_path}/it'\"'\"'s here/compose.yaml' -p media run --rm --no-deps --service-ports "
        '--name media_Web.API_"$TASKDECK_INSTANCE_INDEX" Web.API')


@pytest.mark.parametrize(("value", "seconds"), [
    ("10s", 10), ("1m30s", 90), ("1h", 3600), ("500ms", 0.5), ("1.5s", 1.5), ("2m0.25s", 120.25), ("0", 0), (15, 15),
    (2.5, 2.5),
])
def test_compose_durations(value, seconds):
    assert compose_seconds(value, where="x") == seconds


@pytest.mark.parametrize("value", ["10", "ten seconds", "-1s", "1d", "", True, [1]])
def test_what_is_not_a_compose_duration(value):
    with pytest.raises(InvalidValue, match="is not a duration"):
        compose_seconds(value, where="x")


@pytest.mark.django_db
@pytest.mark.parametrize(("text", "message"), [
    ("services:\n  web: [image\n", "not valid YAML: expected ',' or ']', but got '<stream end>' (line 3, column 1)"),
    ("- web\n", "is not a compose file (its top level is not a mapping)"),
    ("version: '3'\n", "has no services (a compose file declares them under services:)"),
    ("services:\n  'web app': {image: x}\n", "services: 'web app' is not a service name (letters, digits, . _ -)"),
    ("services:\n  web: nginx\n", "services.web: must be a mapping of settings"),
    ("services:\n  web: {deploy: {replicas: two}}\n", "services.web.deploy.replicas: 'two' is not a whole number of "
                                                      "containers"),
    ("services:\n  web: {deploy: {replicas: '${N}'}}\n", "services.web.deploy.replicas: '${N}' uses a variable, which "
                                                         "the import does not expand"),
    ("services:\n  web: {deploy: {replicas: 2}, scale: 3}\n", "services.web: deploy.replicas and scale differ (docker "
                                                             "compose refuses that too)"),
    ("services:\n  web: {stop_grace_period: 10 s}\n", "services.web.stop_grace_period: '10 s' is not a duration "
                                                      "(like 10s or 1m30s)"),
    ("services:\n  web: {depends_on: db}\n", "services.web.depends_on: must be a list of services or a mapping"),
    ("services:\n  web: {deploy: {replicas: 65}}\n", "services.web: Task 'media.web': field 'instances': must be a "
                                                     "whole number from 1 to 64"),
    ("services:\n  web: {stop_signal: SIGNOPE}\n", "services.web: Task 'media.web': field 'stop_signal': unknown signal "
                                                   "'SIGNOPE' (like SIGTERM, SIGINT, SIGHUP)"),
    ("services:\n  a: {depends_on: [b]}\n  b: {depends_on: [a]}\n", "services.a: Task 'media.a': field 'depends_on': "
                                                                     "forms a cycle: media.a -> media.b -> media.a"),
    ("services:\n  web: {image: x}\n  WEB: {image: x}\n", "services.WEB and services.web both become task 'media.web'"),
    ("name: ${PROJECT}\nservices:\n  web: {image: x}\n", "name: '${PROJECT}' uses a variable, which the import does "
                                                         "not expand; give --project"),
    ("name: Media\nservices:\n  web: {image: x}\n", "name: 'Media' is not a project name (lowercase letters, digits, _ "
                                                    "and -, starting with a letter or digit)"),
])
def test_a_malformed_file_fails_in_one_line_naming_it_and_writes_nothing(tmp_path, text, message):
    path = tmp_path / "media" / "compose.yaml"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(CommandError) as raised:
        call("import_compose", str(path))
    assert str(raised.value) == f"{path}: {message}"
    assert not Task.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("arguments", "message"), [
    (["--service", "nope"], "has no service 'nope' (it has db, cache, web, worker, migrate)"),
    (["--project", "Media"], "--project 'Media': a project name is lowercase letters, digits, _ and -, starting with "
                             "a letter or digit"),
])
def test_bad_options_fail_in_one_line(arguments, message):
    with pytest.raises(CommandError) as raised:
        call("import_compose", str(MEDIA), *arguments)
    assert str(raised.value) == f"{MEDIA}: {message}"


def test_an_unreadable_or_missing_file_fails_in_one_line(tmp_path):
    with pytest.raises(CommandError) as raised:
        call("import_compose", str(tmp_path / "nope.yml"))
    assert str(raised.value) == f"{tmp_path / 'nope.yml'}: cannot be read (No such file or directory)"
    (tmp_path / "latin1.yml").write_bytes(b"services:\n  caf\xe9: {}\n")
    with pytest.raises(CommandError, match=r"latin1.yml: not UTF-8 text \(line 2\)$"):
        call("import_compose", str(tmp_path / "latin1.yml"))


def test_what_the_file_cannot_carry_is_said_once(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "docker-compose.override.yml").write_text("services: {}\n")
    path = folder / "compose.yaml"
    path.write_text("include: [other.yaml]\nservices:\n  web:\n    extends: {service: base}\n    container_name: w\n"
                    "    deploy: {replicas: 0, restart_policy: {condition: any}}\n")
    reading = read_compose(path)
    [web] = reading.entries
    assert web.lost == [
        "container_name: each instance is named PROJECT_SERVICE_INDEX",
        "extends: what it brings (deploy.replicas, stop_grace_period, depends_on...) is not read",
        "deploy.restart_policy: ignored; Taskdeck restarts an instance that fails (restart = on_failure)",
        "deploy.replicas: 0, so imported with autostart = false (one instance when started)",
    ]
    assert (web.fields["instances"], web.fields["autostart"]) == (1, False)
    assert reading.notes == [
        "include: not carried over (import each included file on its own)",
        "docker-compose.override.yml beside it: not read, by the import or by the tasks (docker compose reads it only "
        "when given no -f)",
    ]


@pytest.mark.django_db
def test_output_writes_definitions_that_load_back_as_the_import_built_them(tmp_path):
    output = tmp_path / "taskdeck.toml"
    assert call("import_compose", str(MEDIA), "--output", str(output)).splitlines()[-1] == (
        f"5 task(s) to {output}: 5 written.")
    assert not Task.objects.exists()
    assert output.read_text().startswith(f"# Written by manage.py import_compose from {MEDIA}.\n")
    built = build_definitions(read_compose(MEDIA), source="file")
    assert load_definitions_file(output) == built
    assert [definition["id"] for definition in built] == [
        "media.db", "media.cache", "media.web", "media.worker", "media.migrate"]

    call("import_compose", str(MEDIA), "--output", str(output))  # its own earlier output: written again
    assert load_definitions_file(output) == built
    output.write_text('[tasks.nightly]\ncallable = "x.y"\n')
    with pytest.raises(CommandError) as raised:
        call("import_compose", str(MEDIA), "--output", str(output))
    assert str(raised.value) == (f"{output}: already declares other tasks (nightly); write to a new file and copy its "
                                 "tables into your definitions file")


#: A stand-in for docker: ready for SIGTERM first, it writes its argv (one item a line, its name
#: first) and environment where the test reads them (each file whole once there), then waits for
#: the signal, as ``docker compose run`` waits for its container.
FAKE_DOCKER = """#!/bin/sh
out="{record}/$TASKDECK_INSTANCE_INDEX"
trap 'echo "$$" > "$out.stopped"; exit 0' TERM
printf '%s\\n' "$(basename "$0")" "$@" > "$out.argv.part" && mv "$out.argv.part" "$out.argv"
env > "$out.env.part" && mv "$out.env.part" "$out.env"
echo "docker stand-in up"
while :; do sleep 0.05; done
"""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_imported_service_runs_docker_compose_run_under_the_real_supervisor(tmp_path, monkeypatch):
    record, tools, folder = tmp_path / "record", tmp_path / "bin", tmp_path / "shop"
    for made in (record, tools, folder):
        made.mkdir()
    docker = tools / "docker"
    docker.write_text(FAKE_DOCKER.format(record=record))
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")  # the worker's environment finds it
    compose = folder / "compose.yaml"
    compose.write_text("services:\n  app:\n    image: shop/app\n    deploy: {replicas: 2}\n"
                       "    stop_grace_period: 5s\n")
    call("import_compose", str(compose))
    supervisor = Supervisor(interval=0.2, ttl=30)
    try:
        turn(supervisor, lambda: all((record / f"{index}.argv").exists() and (record / f"{index}.env").exists()
                                     for index in (0, 1)), what="both instances to run docker")
        for index in (0, 1):
            assert (record / f"{index}.argv").read_text().splitlines() == [
                "docker", "compose", "-f", str(compose), "-p", "shop", "run", "--rm", "--no-deps", "--service-ports",
                "--name", f"shop_app_{index}", "app"]
            env = dict(line.split("=", 1) for line in (record / f"{index}.env").read_text().splitlines() if "=" in line)
            assert (env["TASKDECK_TASK_ID"], env["TASKDECK_INSTANCE_INDEX"]) == ("shop.app", str(index))
        runs = list(Run.objects.filter(task_id="shop.app").order_by("instance_index"))
        assert [(run.instance_index, run.status) for run in runs] == [(0, RunStatus.RUNNING), (1, RunStatus.RUNNING)]

        services.stop_service("shop.app")
        turn(supervisor, lambda: not Run.objects.filter(task_id="shop.app", status=RunStatus.RUNNING).exists(),
             what="both instances to stop")
        for run in Run.objects.filter(task_id="shop.app"):
            # the stop signal reached docker itself (exec): it is the pid the run recorded, and it exited 0
            assert (record / f"{run.instance_index}.stopped").read_text().strip() == str(run.pid)
            assert (run.status, run.end_reason, run.exit_code) == (RunStatus.CANCELLED, EndReason.CANCELLED, 0)
            assert log_of(run)[1].startswith(b"docker stand-in up\n")  # its output is the run's log
        assert set(ServiceInstance.objects.filter(task_id="shop.app").values_list("state", flat=True)) == {
            InstanceState.STOPPED}
    finally:
        supervisor.shutdown()


def turn(supervisor: Supervisor, until, *, what: str, timeout: float = 10):
    """Step the supervisor until ``until()`` holds."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {what}")
        supervisor.step(wait=0.05)
