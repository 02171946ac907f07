"""`manage.py tasks ...` and `manage.py ensure_admin`."""
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tasks_app.definitions.watcher import check_watcher
from tasks_app.models import (
    Event,
    EventName,
    InstanceState,
    Run,
    RunStatus,
    ServiceInstance,
    Task,
    TaskKind,
    Watcher,
    WatcherState,
)

from ..conftest import ROOT
from ..factories import make_service, make_task, string
from ..processes import Project


def call(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
class TestInProcess:
    def test_list_shows_tasks_with_status(self):
        make_task(id="report", title="Report")
        output = call("tasks", "list")
        assert output.splitlines()[0].split() == ["ID", "KIND", "TRIGGER", "ENABLED", "STATUS", "LAST", "RUN"]
        assert "report" in output and "idle" in output

    def test_run_prints_the_run_id_and_passes_parameters(self):
        make_task(id="report", parameters=[string("region", choices=["eu", "us"])])
        run_id = call("tasks", "run", "report", "--param", "region=us").strip()
        run = Run.objects.get(pk=run_id)
        assert run.parameters == {"region": "us"} and run.triggered_by == "cli" and run.trigger == "manual"

    def test_cancel_and_show(self):
        make_task(id="report")
        run_id = call("tasks", "run", "report").strip()
        assert "cancelled" in call("tasks", "cancel", run_id)
        shown = call("tasks", "show", run_id)
        assert "Status:     cancelled (cancelled)" in shown and "report" in shown
        assert Run.objects.get(pk=run_id).status == RunStatus.CANCELLED

    def test_stop_start_and_restart_a_service_and_list_shows_its_state(self):
        make_task(id="web", kind=TaskKind.SERVICE, callable="", process={"argv": ["httpd"], "instances": 2})
        assert call("tasks", "stop", "web").strip() == (
            "web: stop requested (2 instance(s), stopped now); its supervisor acts within a second.")
        assert not ServiceInstance.objects.filter(task_id="web", wanted=True).exists()
        assert "start requested" in call("tasks", "start", "web")
        assert "restart requested" in call("tasks", "restart", "web")
        assert set(ServiceInstance.objects.values_list("wanted", "start_requested", "restart_requested")) == {(True, 1, 1)}
        ServiceInstance.objects.filter(index=0).update(state=InstanceState.RUNNING)
        [web] = [line.split() for line in call("tasks", "list").splitlines() if line.startswith("web ")]
        assert web[:5] == ["web", "service", "service", "yes", "degraded"]

    def test_list_shows_a_watchers_state_and_what_it_watches(self):
        make_task(id="report")
        make_task(id="watch", kind=TaskKind.WATCHER, callable="", manual_run=False, watch=check_watcher(
            "watch", {"paths": ["/srv/library", "/mnt/roms"], "patterns": ["*.rom"], "target": "report"}))
        Watcher.objects.create(task_id="watch", state=WatcherState.ERROR, pending_changes=3,
                               error="/mnt/roms: no such file or folder; watching it once it appears")
        lines = call("tasks", "list").splitlines()
        [watch] = [line for line in lines if line.startswith("watch ")]
        assert watch.split()[:5] == ["watch", "watcher", "watcher", "yes", "error"]
        assert watch.endswith("/srv/library, /mnt/roms (*.rom) → report after 5 s quiet; 3 change(s) pending; "
                              "/mnt/roms: no such file or folder; watching it once it appears")
        [report] = [line for line in lines if line.startswith("report ")]
        assert report.split()[-1] == "-"

    @pytest.mark.parametrize("args, message", [
        (("tasks", "stop", "report"), "Task 'report' is a python task; only services start, stop and restart."),
        (("tasks", "restart", "nope"), "Task 'nope' does not exist."),
        (("tasks", "run", "nope"), "Task 'nope' does not exist."),
        (("tasks", "run", "report", "--param", "region"), "--param takes KEY=VALUE"),
        (("tasks", "run", "report", "--param", "region=mars"), "Invalid parameters: region."),
        (("tasks", "run", "report", "--dry-run"), "does not support dry runs"),
        (("tasks", "show", "0f0f"), "Run 0f0f does not exist"),
        (("tasks", "cancel", "0f0f"), "Run 0f0f does not exist"),
    ])
    def test_errors_are_one_clear_line(self, args, message):
        make_task(id="report", parameters=[string("region", choices=["eu", "us"])])
        with pytest.raises(CommandError) as caught:
            call(*args)
        assert message in str(caught.value)
        assert "\n" not in str(caught.value)


    def test_running_a_service_says_to_restart_it_in_one_line(self):
        make_service(id="web")
        with pytest.raises(CommandError) as caught:
            call("tasks", "run", "web", "--force")
        assert str(caught.value) == "Task 'web' is a service, kept running by its supervisor: restart it, do not run it."
        assert not Run.objects.exists()


#: A Monday in November: Paris is UTC+1, New York UTC-5, so zone changes show in the next run.
NOW = datetime(2026, 11, 23, 12, 0, 17, tzinfo=UTC)


def row(task_id: str) -> dict[str, Any]:
    """Every column, updated_at included: equal before and after means nothing was written."""
    return Task.objects.filter(pk=task_id).values().get()


def updates(task_id: str) -> list[str]:
    return list(Event.objects.filter(task_id=task_id, name=EventName.UPDATED).values_list("data__message", flat=True))


@pytest.fixture
def fixed_now(clock):
    clock.current = NOW
    return clock


@pytest.mark.django_db
@pytest.mark.usefixtures("fixed_now")
class TestSet:
    @pytest.mark.parametrize("value, interval, unit, text", [
        ("6h", 6, "hours", "every 6 hours"),
        ("90m", 90, "minutes", "every 90 minutes"),
        ("2d", 2, "days", "every 2 days"),
        ("90", 90, "minutes", "every 90 minutes"),
        ("1h", 1, "hours", "every 1 hour"),
    ])
    def test_interval_with_each_unit(self, value, interval, unit, text):
        make_task(id="evaluate_rules", interval=3, interval_unit="days", next_run_at=NOW + timedelta(days=3))
        output = call("tasks", "set", "evaluate_rules", "--interval", value)
        task = Task.objects.get(pk="evaluate_rules")
        assert (task.interval, task.interval_unit) == (interval, unit)
        expected_next = NOW + timedelta(**{unit: interval})
        assert task.next_run_at == expected_next
        assert output == f"evaluate_rules: {text}; next run {expected_next:%Y-%m-%d %H:%M} UTC\n"
        assert updates("evaluate_rules") == ["Changed: interval, interval_unit"]

    def test_cron_with_timezone_normalises_whitespace(self):
        make_task(id="scan_library", cron_string="0 3 * * *", next_run_at=datetime(2026, 11, 24, 3, tzinfo=UTC))
        output = call("tasks", "set", "scan_library", "--cron", " 30  2 *\t* * ", "--timezone", "Europe/Paris")
        task = Task.objects.get(pk="scan_library")
        assert (task.cron_string, task.timezone) == ("30 2 * * *", "Europe/Paris")
        assert task.next_run_at == datetime(2026, 11, 24, 1, 30, tzinfo=UTC)  # 02:30 in Paris
        assert output == 'scan_library: cron "30 2 * * *" (Europe/Paris); next run 2026-11-24 01:30 UTC\n'
        assert updates("scan_library") == ["Changed: cron_string, timezone"]

    def test_cron_alone_keeps_the_timezone(self):
        make_task(id="scan_library", cron_string="0 3 * * *", timezone="Europe/Paris")
        output = call("tasks", "set", "scan_library", "--cron", "0 4 * * *")
        task = Task.objects.get(pk="scan_library")
        assert (task.cron_string, task.timezone) == ("0 4 * * *", "Europe/Paris")
        assert task.next_run_at == datetime(2026, 11, 24, 3, tzinfo=UTC)
        assert output == 'scan_library: cron "0 4 * * *" (Europe/Paris); next run 2026-11-24 03:00 UTC\n'

    def test_timezone_alone_keeps_the_cron(self):
        make_task(id="scan_library", cron_string="30 2 * * *", next_run_at=datetime(2026, 11, 24, 2, 30, tzinfo=UTC))
        output = call("tasks", "set", "scan_library", "--timezone", "America/New_York")
        task = Task.objects.get(pk="scan_library")
        assert (task.cron_string, task.timezone) == ("30 2 * * *", "America/New_York")
        assert task.next_run_at == datetime(2026, 11, 24, 7, 30, tzinfo=UTC)  # 02:30 in New York
        assert output == 'scan_library: cron "30 2 * * *" (America/New_York); next run 2026-11-24 07:30 UTC\n'
        assert updates("scan_library") == ["Changed: cron_string, timezone"]

    def test_disable_clears_the_next_run(self):
        make_task(id="evaluate_rules", interval=6, interval_unit="hours", next_run_at=NOW + timedelta(hours=6))
        assert call("tasks", "set", "evaluate_rules", "--disable") == "evaluate_rules: disabled; no next run\n"
        task = Task.objects.get(pk="evaluate_rules")
        assert task.enabled is False and task.next_run_at is None
        assert updates("evaluate_rules") == ["Changed: enabled"]

    def test_enable_schedules_the_next_run(self):
        make_task(id="evaluate_rules", interval=6, interval_unit="hours", enabled=False, next_run_at=None)
        output = call("tasks", "set", "evaluate_rules", "--enable")
        task = Task.objects.get(pk="evaluate_rules")
        assert task.enabled is True and task.next_run_at == NOW + timedelta(hours=6)
        assert output == f"evaluate_rules: enabled; next run {NOW + timedelta(hours=6):%Y-%m-%d %H:%M} UTC\n"
        assert updates("evaluate_rules") == ["Changed: enabled"]

    def test_a_schedule_change_and_disable_both_apply_schedule_first(self):
        make_task(id="evaluate_rules", interval=6, interval_unit="hours", next_run_at=NOW + timedelta(hours=6))
        output = call("tasks", "set", "evaluate_rules", "--disable", "--interval", "2h")
        assert output.splitlines() == [
            f"evaluate_rules: every 2 hours; next run {NOW + timedelta(hours=2):%Y-%m-%d %H:%M} UTC",
            "evaluate_rules: disabled; no next run",
        ]
        task = Task.objects.get(pk="evaluate_rules")
        assert (task.interval, task.interval_unit, task.enabled, task.next_run_at) == (2, "hours", False, None)
        assert updates("evaluate_rules") == ["Changed: interval, interval_unit", "Changed: enabled"]

    def test_a_cron_change_and_enable_both_apply(self):
        make_task(id="scan_library", cron_string="0 3 * * *", enabled=False)
        output = call("tasks", "set", "scan_library", "--cron", "30 2 * * *", "--enable")
        assert output.splitlines() == [
            'scan_library: cron "30 2 * * *" (UTC); no next run',
            "scan_library: enabled; next run 2026-11-24 02:30 UTC",
        ]
        task = Task.objects.get(pk="scan_library")
        assert (task.cron_string, task.enabled, task.next_run_at) == ("30 2 * * *", True, datetime(2026, 11, 24, 2, 30, tzinfo=UTC))

    @pytest.mark.parametrize("args, message", [
        # --interval values
        (("evaluate_rules", "--interval", "1.5h"),
         '--interval: "1.5h" is not a whole number of minutes, hours or days (like 90m, 6h, 2d).'),
        (("evaluate_rules", "--interval", "1.5"), '--interval: "1.5" is not a whole number'),
        (("evaluate_rules", "--interval", "6x"), '--interval: "6x" is not a whole number'),
        (("evaluate_rules", "--interval", "-1"), '--interval: "-1" is not a whole number'),
        (("evaluate_rules", "--interval", ""), '--interval: "" is not a whole number'),
        (("evaluate_rules", "--interval", "h"), '--interval: "h" is not a whole number'),
        (("evaluate_rules", "--interval", "6\nh"), '--interval: "6\\nh" is not a whole number'),
        (("evaluate_rules", "--interval", "0"), '--interval: "0" must be at least 1.'),
        (("evaluate_rules", "--interval", "0h"), '--interval: "0h" must be at least 1'),
        (("evaluate_rules", "--interval", "3661d"), '--interval: "3661d" is longer than 10 years.'),
        (("evaluate_rules", "--interval", "99999999999999999999999m"), "is longer than 10 years."),
        # --cron and --timezone values
        (("scan_library", "--cron", "61 * * * *"), '--cron: "61 * * * *" is not a 5-field cron expression that fires'),
        (("scan_library", "--cron", "0 0 30 2 *"), '--cron: "0 0 30 2 *" is not a 5-field cron expression that fires'),
        (("scan_library", "--cron", "* * * *"), '--cron: "* * * *" is not a 5-field'),
        (("scan_library", "--cron", "0 3 * * * *"), '--cron: "0 3 * * * *" is not a 5-field'),
        (("scan_library", "--cron", "  "), '--cron: "" is not a 5-field'),
        (("scan_library", "--cron", ",".join(map(str, range(60))) + " 3 * * *"),
         "--cron: the expression is 177 characters long; at most 120 fit."),
        (("scan_library", "--cron", "30 2 * * *", "--timezone", "Mars/Olympus"),
         '--timezone: unknown time zone "Mars/Olympus" (like UTC or Europe/Paris).'),
        (("scan_library", "--timezone", "europe/paris"), '--timezone: unknown time zone "europe/paris"'),
        (("scan_library", "--timezone", ""), '--timezone: unknown time zone ""'),
        (("scan_library", "--timezone", "../../etc/passwd"), '--timezone: unknown time zone "../../etc/passwd"'),
        # combinations
        (("evaluate_rules", "--interval", "6h", "--cron", "0 3 * * *"), "--interval and --cron cannot be combined"),
        (("evaluate_rules", "--interval", "6h", "--timezone", "UTC"), "--timezone applies to cron schedules"),
        (("evaluate_rules", "--enable", "--disable"), "--enable and --disable contradict each other"),
        (("evaluate_rules",), "Nothing to change: give --interval, --cron, --timezone, --enable or --disable."),
        # options the task's schedule does not take (the services refuse them)
        (("scan_library", "--interval", "6h"), "Task 'scan_library' is not interval-scheduled."),
        (("evaluate_rules", "--cron", "0 3 * * *"), "Task 'evaluate_rules' is not cron-scheduled."),
        (("evaluate_rules", "--timezone", "Europe/Paris"), "Task 'evaluate_rules' is not cron-scheduled."),
        (("manual_only", "--interval", "6h"), "Task 'manual_only' is not interval-scheduled."),
        (("manual_only", "--timezone", "UTC"), "Task 'manual_only' is not cron-scheduled."),
        (("evaluate_rules", "--cron", "0 3 * * *", "--disable"), "Task 'evaluate_rules' is not cron-scheduled."),
        (("scan_library", "--interval", "6h", "--enable"), "Task 'scan_library' is not interval-scheduled."),
        (("nope", "--interval", "6h"), "Task 'nope' does not exist."),
        (("nope", "--timezone", "UTC"), "Task 'nope' does not exist."),
        (("nope", "--disable"), "Task 'nope' does not exist."),
    ])
    def test_errors_are_one_line_and_change_nothing(self, args, message):
        make_task(id="evaluate_rules", interval=6, interval_unit="hours", next_run_at=NOW + timedelta(hours=6))
        make_task(id="scan_library", cron_string="0 3 * * *", enabled=False)
        make_task(id="manual_only")
        before = {task_id: row(task_id) for task_id in ("evaluate_rules", "scan_library", "manual_only")}
        with pytest.raises(CommandError) as caught:
            call("tasks", "set", *args)
        assert message in str(caught.value)
        assert "\n" not in str(caught.value)
        assert {task_id: row(task_id) for task_id in before} == before
        assert not Event.objects.exists()


@pytest.fixture
def project(tmp_path, process_env) -> Project:
    project = Project(tmp_path / "db.sqlite3", {**process_env, "TASKDECK_DATA_DIR": str(tmp_path / "var")})
    project.manage("migrate", "--noinput", "-v0")
    return project


def test_a_failed_run_exits_non_zero_with_one_line_on_stderr(project):
    result = project.manage("tasks", "run", "nope", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "CommandError: Task 'nope' does not exist."


def test_set_exits_non_zero_with_one_line_on_stderr_and_changes_nothing(project):
    project.manage("tasks", "sync")  # the example tasks: evaluate_rules runs every 60 minutes
    bad_value = project.manage("tasks", "set", "evaluate_rules", "--interval", "1.5h", "--disable", check=False)
    assert bad_value.returncode == 1 and bad_value.stdout == ""
    assert bad_value.stderr.strip() == (
        'CommandError: --interval: "1.5h" is not a whole number of minutes, hours or days (like 90m, 6h, 2d).'
    )
    refused = project.manage("tasks", "set", "evaluate_rules", "--cron", "0 3 * * *", "--disable", check=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip() == "CommandError: Task 'evaluate_rules' is not cron-scheduled."
    listed = {line.split()[0]: line.split() for line in project.manage("tasks", "list").stdout.splitlines()}
    assert listed["evaluate_rules"][3] == "yes"  # ENABLED: the refused change took --disable with it
    changed = project.manage("tasks", "set", "evaluate_rules", "--interval", "2d")
    assert changed.stdout.startswith("evaluate_rules: every 2 days; next run ") and changed.stdout.endswith(" UTC\n")


def test_the_example_service_syncs_and_lists_and_running_it_fails_in_one_line(project):
    assert "heartbeat_service" in project.manage("tasks", "sync").stdout  # the project's definitions file
    listed = {line.split()[0]: line.split() for line in project.manage("tasks", "list").stdout.splitlines()}
    assert listed["heartbeat_service"] == ["heartbeat_service", "service", "service", "yes", "stopped", "-", "-"]
    refused = project.manage("tasks", "run", "heartbeat_service", check=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip() == ("CommandError: Task 'heartbeat_service' is a service, kept running by its "
                                      "supervisor: restart it, do not run it.")


def test_the_example_watcher_syncs_disabled_and_lists_what_it_watches(project):
    project.manage("tasks", "sync")
    lines = project.manage("tasks", "list").stdout.splitlines()
    assert lines[0].split()[-1] == "WATCHES"
    [watcher] = [line for line in lines if line.startswith("filesystem_watcher ")]
    assert watcher.split()[:6] == ["filesystem_watcher", "watcher", "watcher", "no", "stopped", "-"]
    assert watcher.endswith("var/example-library/roms (*.bin) → scan_library after 5 s quiet")
    refused = project.manage("tasks", "run", "filesystem_watcher", check=False)
    assert refused.returncode == 1 and refused.stderr.strip() == (
        "CommandError: Task 'filesystem_watcher' is a file watcher: it triggers 'scan_library' when files change, "
        "and is not run itself.")


def test_ensure_admin_creates_one_login_once_and_says_where_the_password_is(project, tmp_path):
    first = project.manage("ensure_admin").stdout
    password_file = tmp_path / "var" / "admin-password.txt"
    assert "Created the admin user 'admin'." in first and str(password_file) in first
    password = password_file.read_text().strip()
    assert len(password) >= 12 and password not in (ROOT / "Makefile").read_text()
    assert oct(password_file.stat().st_mode)[-3:] == "600"
    second = project.manage("ensure_admin").stdout
    assert "Created" not in second and password_file.read_text().strip() == password


@pytest.mark.parametrize(("argv", "message"), [
    ([b"run", b"scan_library", b"--param", b"platforms=gba\xed\xa0\x80"], '--param: "platforms=gba\\udced\\udca0'),
    ([b"run", b"scan\xff"], 'task_id: "scan\\udcff" contains'),
    ([b"set", b"scan_library", b"--timezone", b"Europe/Par\xe9s"], '--timezone: "Europe/Par\\udce9s" contains'),
])
def test_arguments_that_are_not_utf8_are_refused_in_one_line_naming_them(project, argv, message):
    import subprocess
    import sys

    project.manage("tasks", "sync")
    result = subprocess.run([sys.executable.encode(), b"manage.py", b"tasks", *argv], cwd=ROOT, env=project.env,
                            capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    stderr = result.stderr.decode("utf-8", "replace").strip()
    assert result.returncode == 1 and len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith(f"CommandError: {message}") and "lone surrogate" in stderr
    assert "Traceback" not in stderr
    assert project.manage("tasks", "list").stdout.count("\n") >= 3  # nothing broke: the list still renders
