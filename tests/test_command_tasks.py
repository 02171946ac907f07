"""`manage.py tasks ...` and `manage.py ensure_admin`."""
import io

import pytest
from django.core.management import CommandError, call_command

from tasks_app.models import Run, RunStatus

from .conftest import ROOT
from .factories import make_task, string
from .processes import Project


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

    @pytest.mark.parametrize("args, message", [
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


@pytest.fixture
def project(tmp_path, process_env) -> Project:
    project = Project(tmp_path / "db.sqlite3", {**process_env, "TASKDECK_DATA_DIR": str(tmp_path / "var")})
    project.manage("migrate", "--noinput", "-v0")
    return project


def test_a_failed_run_exits_non_zero_with_one_line_on_stderr(project):
    result = project.manage("tasks", "run", "nope", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "CommandError: Task 'nope' does not exist."


def test_ensure_admin_creates_one_login_once_and_says_where_the_password_is(project, tmp_path):
    first = project.manage("ensure_admin").stdout
    password_file = tmp_path / "var" / "admin-password.txt"
    assert "Created the admin user 'admin'." in first and str(password_file) in first
    password = password_file.read_text().strip()
    assert len(password) >= 12 and password not in (ROOT / "Makefile").read_text()
    assert oct(password_file.stat().st_mode)[-3:] == "600"
    second = project.manage("ensure_admin").stdout
    assert "Created" not in second and password_file.read_text().strip() == password
