"""The browser tests' serve: its worker runs the example tasks and the definitions file's tasks."""
from __future__ import annotations

from playwright.sync_api import expect

from .conftest import FAST_SCAN


def test_a_fast_scan_completes_and_its_run_page_says_so(serve, admin_page):
    run_id = serve.trigger("scan_library", **FAST_SCAN)
    run = serve.wait_for_run(run_id)
    assert (run["status"], run["result"]["files"]) == ("completed", 160), serve.log()

    admin_page.goto(f"/admin/tasks_app/run/{run_id}/change/")
    content = admin_page.locator("#content")
    expect(content).to_contain_text(run_id)
    expect(content).to_contain_text("Completed")


def test_a_task_from_the_definitions_file_runs(serve):
    run = serve.wait_for_run(serve.trigger("items", count=3))
    assert (run["status"], run["result"]) == ("completed", {"count": 3, "dry_run": False}), run
