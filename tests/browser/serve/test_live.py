"""The live admin pages in chromium against a real serve: nothing here reloads a page.

Each test marks its page (``window.stayed``) after loading it and checks the mark at the end:
a reload or navigation would wipe it, so every change seen in between came over the WebSocket.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime

from playwright.sync_api import Page, expect

from .conftest import screenshot

NOT_RELOADED = "() => window.stayed === true"


def stay(page: Page) -> None:
    page.evaluate("window.stayed = true")
    expect(page.locator("[data-live-state]").first).to_have_text("live")


def run_id_from(page: Page) -> str:
    return re.search(r"/admin/tasks_app/run/([0-9a-f-]{36})/change/", page.url).group(1)


def test_a_scan_started_from_the_form_shows_progress_and_activity_live_to_the_end(serve, admin_page):
    page = admin_page
    page.goto("/admin/tasks_app/task/scan_library/change/")
    page.get_by_role("link", name="Run now").click()
    expect(page.get_by_label("platforms")).to_have_attribute("list", "id_param_platforms-choices")
    page.get_by_label("platforms").fill("gba,snes")
    page.get_by_label("pace").fill("0.04")  # 80 files: about 3 s
    page.get_by_role("button", name="Run scan_library now").click()

    expect(page).to_have_url(re.compile(r"/admin/tasks_app/run/[0-9a-f-]{36}/change/$"))
    expect(page.locator(".messagelist")).to_contain_text("of scan_library: queued.")
    stay(page)
    percents = []
    rows = []
    for _ in range(3):  # the bar and the table move while we watch
        page.wait_for_timeout(500)
        percents.append(float(page.locator(".td-progress").get_attribute("aria-valuenow") or 0))
        rows.append(page.locator(".td-activity-table tbody tr").count())
    screenshot(page, "run-page")
    expect(page.locator(".td-run-status .td-badge")).to_have_text("Completed", timeout=20_000)

    expect(page.locator("[data-progress-percent]")).to_have_text("100%")
    expect(page.locator(".td-progress-bar")).to_have_attribute("style", "width: 100.0%")
    expect(page.locator(".td-activity")).to_contain_text("80 items")
    expect(page.locator(".td-activity .paginator")).to_contain_text("page 1 of 2")
    expect(page.locator("[data-live-log]")).to_contain_text("Scanning 80 files on gba, snes")
    assert percents == sorted(percents) and percents[-1] > percents[0], percents
    assert rows == sorted(rows) and rows[-1] > rows[0], rows
    assert page.evaluate(NOT_RELOADED)
    run = serve.wait_for_run(run_id_from(page))
    assert run["parameters"] == {"platforms": "gba,snes", "pace": 0.04, "changed_paths": ""}
    assert run["triggered_by"] == "user:admin"


def test_a_running_run_is_cancelled_from_its_page_and_ends_cancelled(serve, admin_page):
    run_id = serve.trigger("cooperative", seconds=60)
    page = admin_page
    page.goto(f"/admin/tasks_app/run/{run_id}/change/")
    stay(page)
    expect(page.locator(".td-run-status .td-badge")).to_have_text("Running")

    page.get_by_role("button", name="Cancel this run").click()  # a form post: the page comes back
    # The view reads the run again after asking: a run that stopped within that instant (its
    # watchdog is woken at once, the task looks every 50 ms) is reported cancelled already.
    expect(page.locator(".messagelist")).to_contain_text(re.compile(r": (cancel requested|cancelled)\."))
    stay(page)
    expect(page.locator(".td-run-status .td-badge")).to_have_text("Cancelled")
    expect(page.locator(".td-run-status")).to_contain_text("Cancelled")
    expect(page.get_by_role("button", name="Cancel this run")).to_have_count(0)
    assert page.evaluate(NOT_RELOADED)
    assert serve.wait_for_run(run_id)["end_reason"] == "cancelled"


def test_the_task_list_follows_runs_as_they_start_and_end(serve, admin_page):
    page = admin_page
    page.goto("/admin/tasks_app/task/")
    stay(page)
    status = page.locator('[data-live-fragment="status:cooperative"]')
    expect(status).to_have_text("Idle")
    cancelled_bars = page.locator('[data-live-fragment="chart:cooperative"] rect.td-bar-cancelled')
    cancelled_before = cancelled_bars.count()

    run_id = serve.trigger("cooperative", seconds=60)
    expect(status).to_have_text("Running")
    last_run = page.locator('[data-live-fragment="last_run:cooperative"]')
    expect(last_run.locator(f'a[href="/admin/tasks_app/run/{run_id}/change/"]')).to_have_text("Running")
    serve.api("POST", f"runs/{run_id}/cancel")
    expect(status).to_have_text("Idle")
    expect(last_run).to_contain_text("Cancelled")
    expect(cancelled_bars).to_have_count(cancelled_before + 1)
    assert page.evaluate(NOT_RELOADED)

    scans = page.locator('[data-live-fragment="chart:scan_library"] rect')
    scans_before = scans.count()
    for pace, platforms in [(0.002, ""), (0.004, ""), (0.001, "gba"), (0.003, ""), (0, "dreamcast")]:
        serve.wait_for_run(serve.trigger("scan_library", pace=pace, platforms=platforms))
    expect(scans).to_have_count(scans_before + 5)
    expect(page.locator('[data-live-fragment="status:scan_library"]')).to_have_text("Error")  # the last one failed
    page.set_viewport_size({"width": 1440, "height": 640})
    screenshot(page, "task-list")


def test_editing_an_interval_previews_the_fire_times_and_moves_the_next_run(serve, admin_page):
    before = serve.api("GET", "tasks/evaluate_rules").json()
    page = admin_page
    page.goto("/admin/tasks_app/task/evaluate_rules/change/")
    preview = page.locator("[data-fire-times] li")
    expect(preview).to_have_count(5)
    first_before = preview.first.inner_text()

    page.get_by_label("Interval:", exact=True).fill("7")
    expect(preview.first).not_to_have_text(first_before)  # previewed before saving
    page.get_by_label("Cron string").fill("5 4 * * *")
    expect(page.locator("[data-fire-times] .td-error")).to_contain_text("not both")
    page.get_by_label("Cron string").fill("")
    expect(preview).to_have_count(5)
    times = preview.all_inner_texts()
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator(".messagelist .success")).to_be_visible()
    after = serve.api("GET", "tasks/evaluate_rules").json()
    assert (after["interval"], after["interval_unit"]) == (7, "minutes")
    assert after["next_run_at"] != before["next_run_at"]
    row = page.locator("#result_list tr", has_text="evaluate_rules")
    expect(row).to_contain_text("every 7 minutes")
    expect(row).to_contain_text(re.compile(r"next in (\d+\s+minutes?|under a minute)"))
    previewed = datetime.strptime(times[0], "%a %d %b %Y, %H:%M UTC").replace(tzinfo=UTC)
    saved = datetime.fromisoformat(after["next_run_at"].replace("Z", "+00:00"))
    assert abs((saved - previewed).total_seconds()) < 120, (times[0], after["next_run_at"])  # typed, then saved
    serve.api("PUT", "tasks/evaluate_rules/interval", interval=60, unit="minutes")  # as the examples declare


def test_the_dashboard_shows_running_runs_live_and_reconnects_after_a_drop(serve, admin_page):
    page = admin_page
    page.goto("/admin/")
    stay(page)
    running = page.locator(".td-section", has_text="Running now")
    expect(running).to_contain_text("Nothing is running.")

    page.evaluate("document.querySelector('[data-live-src]').taskdeckLive.socket().close()")
    expect(page.locator("[data-live-state]")).to_have_text("reconnecting…")
    expect(page.locator("[data-live-state]")).to_have_text("live")
    failed = serve.trigger("scan_library", platforms="dreamcast")
    run_id = serve.trigger("cooperative", seconds=60)
    expect(running).to_contain_text("Cooperative (test)")
    expect(page.locator(".td-section", has_text="Failed in the last 24 hours")).to_contain_text(
        "unknown platform(s): dreamcast")
    assert serve.wait_for_run(failed)["status"] == "failed"
    expect(page.locator(".td-card", has_text="running")).to_contain_text("1")
    screenshot(page, "dashboard")
    serve.api("POST", f"runs/{run_id}/cancel")
    expect(running).to_contain_text("Nothing is running.")
    assert page.evaluate(NOT_RELOADED)


def test_markup_in_output_activity_and_errors_is_shown_as_text(serve, admin_page):
    from tests.sample_tasks import HOSTILE

    run_id = serve.trigger("hostile")
    serve.wait_for_run(run_id)
    page = admin_page
    for path in (f"/admin/tasks_app/run/{run_id}/change/", "/admin/tasks_app/task/", "/admin/",
                 "/admin/tasks_app/activity/", "/admin/tasks_app/task/hostile/change/"):
        page.goto(path)
        page.wait_for_timeout(300)  # let a live refresh land too
        assert page.evaluate("window.pwned") is None, path
        expect(page.locator("#content img[src=x], #content b:text('bold')")).to_have_count(0)
    page.goto(f"/admin/tasks_app/run/{run_id}/change/")
    expect(page.locator("[data-live-log]")).to_contain_text(f"printed {HOSTILE}")
    expect(page.locator(".td-activity-table")).to_contain_text(HOSTILE)
    expect(page.locator(".td-error")).to_contain_text(HOSTILE)


def test_a_command_runs_output_tails_live_as_text_with_its_pid_then_its_exit_code(serve, admin_page, tmp_path):
    gate = tmp_path / "gate"  # the command waits for it after its first line
    run_id = serve.trigger("gated_command", gate=str(gate))
    page = admin_page
    page.goto(f"/admin/tasks_app/run/{run_id}/change/")
    stay(page)
    log = page.locator("[data-live-log]")
    expect(page.locator(".td-run-status .td-badge")).to_have_text("Running")
    # Markup as text; bytes that are not UTF-8 as replacement characters; the page carries on.
    expect(log).to_contain_text("<script>window.pwned = 1</script> caf\ufffd \ufffd")
    process_cell, exit_cell = page.locator(".td-process td").first, page.locator(".td-process td").last
    expect(process_cell).to_have_text(re.compile(r"pid [0-9]+"))
    expect(exit_cell).to_have_text("-")
    assert "after the gate" not in log.inner_text()

    gate.touch()  # the command writes its last line and exits 3
    expect(log).to_contain_text("after the gate")
    expect(page.locator(".td-run-status .td-badge")).to_have_text("Failed")
    run = serve.wait_for_run(run_id)
    expect(process_cell).to_have_text(f"pid {run['pid']}")
    expect(exit_cell).to_have_text("exit code 3")
    assert run["exit_code"] == 3 and run["error"] == "exit code 3"
    assert log.inner_text().count("after the gate") == 1  # appended once, not twice
    assert page.evaluate("window.pwned") is None
    assert page.evaluate(NOT_RELOADED)


def test_a_services_instances_follow_live_from_start_to_healthy_then_stop(serve, admin_page):
    page = admin_page
    page.goto("/admin/tasks_app/task/pinger/change/")
    panel = page.locator(".td-instances-panel")
    expect(panel).to_contain_text("Stopped", timeout=15_000)  # autostart = false: its supervisor keeps it down
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("Pinger: start requested")
    stay(page)
    expect(panel.locator("tbody tr").first).to_contain_text("Starting", timeout=15_000)
    expect(panel.locator("tbody tr").first).to_contain_text("Running", timeout=15_000)  # up healthy_after (2 s)
    pid = panel.locator("tbody tr td").nth(2).inner_text()
    assert pid.isdigit()
    assert page.evaluate(NOT_RELOADED)
    screenshot(page, "service")
    page.get_by_role("button", name="Stop", exact=True).click()
    stay(page)
    expect(panel).to_contain_text("Stopped", timeout=15_000)


def test_a_watcher_enabled_watches_and_its_trigger_shows_live(serve, admin_page):
    page = admin_page
    page.goto("/admin/tasks_app/task/dropbox/change/")
    panel = page.locator(".td-watcher").locator("..")
    expect(panel).to_contain_text("Disabled: enable it to watch its paths.")
    stay(page)
    assert serve.api("PUT", "tasks/dropbox/enabled", enabled=True).status_code == 200
    paths = page.locator(".td-watcher-paths tbody tr").first
    expect(paths).to_contain_text(str(serve.dropbox), timeout=15_000)
    expect(paths).to_contain_text("inotify", timeout=15_000)  # its supervisor took it
    for index in range(3):
        (serve.dropbox / f"copy-{index}.rom").write_bytes(b"x")
    expect(panel.locator("a", has_text="run of items")).to_be_visible(timeout=15_000)  # 1 s after the last copy
    run_id = re.search(r"/admin/tasks_app/run/([0-9a-f-]{36})/change/",
                       panel.locator("a", has_text="run of items").get_attribute("href")).group(1)
    run = serve.wait_for_run(run_id)
    assert (run["trigger"], run["triggered_by"], run["status"]) == ("watcher", "watcher:dropbox", "completed")
    assert page.evaluate(NOT_RELOADED)
    panel.scroll_into_view_if_needed()
    screenshot(page, "watcher")
    assert serve.api("PUT", "tasks/dropbox/enabled", enabled=False).status_code == 200
    expect(panel).to_contain_text("Disabled: enable it to watch its paths.", timeout=15_000)
