"""The admin in a real browser (Playwright driving Debian's chromium) against pytest-django's
in-process live_server, for checks that set up rows with the ORM; the live pages (WebSocket)
are tested against a real serve in tests/browser/serve/."""
import os
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User

from tasks_app import services
from tasks_app.definitions.load import all_definitions
from tasks_app.models import Activity, Run, RunStatus, RunTrigger, Task

from ...conftest import run_until_ended
from ...factories import make_task, write_log

pytestmark = [pytest.mark.django_db(transaction=True)]
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")  # one sync Playwright per thread at a time: tests/browser/serve/ starts its own
def browser():
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def log_in(page, username: str, password: str) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


@pytest.fixture
def superuser():
    return User.objects.create_superuser("root", password="correct horse battery")


@pytest.mark.usefixtures("qcluster")
def test_an_operator_runs_a_task_from_the_task_list_and_reads_its_run(page, superuser):
    services.sync_definitions(all_definitions())
    log_in(page, "root", "correct horse battery")
    page.goto("/admin/tasks_app/task/")
    row = page.locator("tr", has=page.locator("th.field-task_text", has_text="scan_library"))  # not the watcher's
    assert "cron 0 3 * * * (UTC)" in row.inner_text()
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "run_now")
    page.click("button[name=index]")
    assert re.search(r"Run [0-9a-f]{8} of scan_library: queued\.", page.locator("ul.messagelist").text_content())

    run = run_until_ended(Run.objects.get(task_id="scan_library"), timeout=30)
    assert run.status == RunStatus.COMPLETED and run.triggered_by == "user:root"
    page.goto(f"/admin/tasks_app/run/{run.pk}/change/")
    content = page.locator("#content").inner_text()
    assert "Completed" in content and "Scanning 160 files" in content
    assert page.inner_text(".td-progress-text").split() == ["100%", "160", "/", "160", "Scanning", "psx"]


def test_run_output_and_activity_are_shown_as_text(page, superuser):
    task = make_task(title="<img src=x onerror=alert(1)>")
    run = services.trigger(task, source=RunTrigger.API, requested_by="test")
    payload = "<script>window.pwned = 1</script><b>bold</b>"
    Run.objects.filter(pk=run.pk).update(error=payload, status=RunStatus.FAILED, end_reason="failed")
    write_log(run, payload.encode() + b"\n\xff binary\n")
    Activity.objects.create(run=run, item_id="x", item_title=payload, action="delete", status="success",
                            timestamp=run.created_at)
    log_in(page, "root", "correct horse battery")
    for path in (f"/admin/tasks_app/run/{run.pk}/change/", "/admin/tasks_app/activity/", "/admin/tasks_app/task/"):
        page.goto(path)
        assert page.evaluate("window.pwned") is None
        assert page.locator("#content b").count() == 0 and page.locator("#content img[src=x]").count() == 0
    page.goto(f"/admin/tasks_app/run/{run.pk}/change/")
    assert payload in page.locator("#content").inner_text()
    assert "\ufffd binary" in page.locator("[data-live-log]").inner_text()  # invalid UTF-8 replaced, page intact


def test_the_traceback_of_a_failed_run_is_for_superusers_only(page, superuser):
    run = services.trigger(make_task(), source=RunTrigger.API, requested_by="test")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, end_reason="failed", error="ValueError: boom",
                                         traceback="Traceback (most recent call last): secret frame")
    staff = User.objects.create_user("viewer", password="correct horse battery", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_run"))
    log_in(page, "viewer", "correct horse battery")
    page.goto(f"/admin/tasks_app/run/{run.pk}/change/")
    content = page.locator("#content").inner_text()
    assert "ValueError: boom" in content and "secret frame" not in content
    page.context.clear_cookies()
    log_in(page, "root", "correct horse battery")
    page.goto(f"/admin/tasks_app/run/{run.pk}/change/")
    assert "secret frame" in page.content()  # in a collapsed fieldset, so present but folded


def test_runs_are_cancelled_from_the_run_list_and_only_ended_runs_are_deleted(page, superuser):
    # `active` holds the only slot (running or not, depending on the workers); `held` waits behind it.
    task = make_task(on_overlap="queue", queue_max=5, callable="tests.sample_tasks.cooperative")
    active = services.trigger(task, source=RunTrigger.API, requested_by="test")
    held = services.trigger(task, source=RunTrigger.API, requested_by="test")
    log_in(page, "root", "correct horse battery")
    page.goto("/admin/tasks_app/run/")
    page.locator("tr", has_text=str(held.pk)[:8]).locator("input.action-select").check()
    page.select_option("select[name=action]", "cancel_runs")
    page.click("button[name=index]")
    assert f"Run {str(held.pk)[:8]}: cancelled." in page.locator("ul.messagelist").text_content()
    held.refresh_from_db()
    assert held.status == RunStatus.CANCELLED

    assert page.goto(f"/admin/tasks_app/run/{active.pk}/delete/").status == 403  # still active
    page.goto(f"/admin/tasks_app/run/{held.pk}/delete/")
    page.click("input[type=submit]")
    assert not Run.objects.filter(pk=held.pk).exists() and Run.objects.filter(pk=active.pk).exists()
    services.cancel_task(task.pk)


def test_schedule_edits_are_checked_and_move_the_next_run(page, superuser, clock):
    from tasks_app.models import Event

    task = make_task(id="nightly", interval=6, interval_unit="hours")
    services.initialise_schedules(now=clock.now())
    before = Task.objects.get(pk="nightly").next_run_at
    log_in(page, "root", "correct horse battery")
    page.goto("/admin/tasks_app/task/nightly/change/")
    for field, value, message in [
        ("#id_interval", "0", "at least 1"),
        ("#id_cron_string", "61 * * * *", "cron expression"),
        ("#id_timezone", "Mars/Olympus", "Unknown time zone"),
    ]:
        page.goto("/admin/tasks_app/task/nightly/change/")
        page.fill(field, value)
        page.click("input[name=_save]")
        assert message in page.inner_text(".errorlist"), (field, value)
    assert Task.objects.get(pk="nightly").next_run_at == before  # nothing saved
    page.goto("/admin/tasks_app/task/nightly/change/")
    page.fill("#id_interval", "2")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    task.refresh_from_db()
    assert (task.interval, task.interval_unit) == (2, "hours") and "interval" in task.overrides
    assert task.next_run_at == clock.now() + timedelta(hours=2) != before
    assert Event.objects.filter(task_id="nightly", name="task:updated").exists()
