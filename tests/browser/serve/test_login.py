"""Logging in to the admin through the real form, and what each kind of user finds there."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import ADMIN, STAFF, Login, log_in, screenshot, submit_login


def test_the_login_form_refuses_a_wrong_password(anonymous_page):
    page = anonymous_page
    submit_login(page, Login(ADMIN.username, "not-the-password"))
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    expect(page.locator(".errornote")).to_contain_text("Please enter the correct username and password")


def test_the_superuser_logs_in_and_finds_the_example_tasks(anonymous_page):
    page = anonymous_page
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/$"))
    screenshot(page, "admin-login")

    log_in(page, ADMIN)
    expect(page.locator("#user-tools")).to_contain_text(f"Welcome, {ADMIN.username}")
    taskdeck = page.get_by_role("table", name="Taskdeck")
    taskdeck.get_by_role("link", name="Tasks", exact=True).click()

    expect(page).to_have_url(re.compile(r"/admin/tasks_app/task/$"))
    rows = page.locator("#result_list tbody tr")
    expect(rows.filter(has_text="scan_library")).to_have_count(1)
    expect(rows.filter(has_text="scan_library")).to_contain_text("Scan library")
    expect(rows.filter(has_text="Items (test)")).to_have_count(1)  # from the definitions file
    expect(page.locator(".object-tools").get_by_role("link", name="Add task")).to_be_visible()


def test_the_superuser_may_change_a_task(admin_page):
    admin_page.goto("/admin/tasks_app/task/scan_library/change/")
    expect(admin_page.get_by_role("heading", name="Change task")).to_be_visible()
    expect(admin_page.get_by_role("button", name="Save", exact=True)).to_be_visible()


def test_view_only_staff_sees_the_tasks_but_cannot_add_or_change_them(staff_page):
    page = staff_page
    page.goto("/admin/")
    expect(page.locator("#user-tools")).to_contain_text(f"Welcome, {STAFF.username}")
    page.get_by_role("table", name="Taskdeck").get_by_role("link", name="Tasks", exact=True).click()

    expect(page).to_have_url(re.compile(r"/admin/tasks_app/task/$"))
    scan = page.locator("#result_list tbody tr").filter(has_text="scan_library")
    expect(scan).to_contain_text("Scan library")
    expect(page.get_by_role("link", name=re.compile("^Add"))).to_have_count(0)
    expect(page.get_by_role("option", name="Run selected tasks now")).to_have_count(0)

    scan.get_by_role("link", name=re.compile("scan_library")).click()
    expect(page.get_by_role("heading", name="View task")).to_be_visible()
    expect(page.get_by_role("button", name="Save", exact=True)).to_have_count(0)

