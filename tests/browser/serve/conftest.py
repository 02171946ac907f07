"""Browser tests of the admin: Playwright driving Debian's chromium against a real `manage.py serve`.

One serve (web, worker, scheduler) for this package's tests, on a free loopback port, with its
own SQLite database and data folder, the example tasks (the ``examples`` app) and the tasks in
``DEFINITIONS``. Two users exist in it, ``ADMIN`` (superuser) and ``STAFF`` (staff, view
permissions on tasks_app only); each logs in once through the real login form, and later pages
reuse that login's cookies.

Everything here is package-scoped: it starts with the first browser test and stops after the
last. Playwright's sync API keeps an asyncio loop running on the main thread meanwhile, under
which Django refuses ORM calls (SynchronousOnlyOperation): browser tests do not use the ORM (the
serve has its own database anyway; reach it with ``serve.manage(...)`` or ``serve.api(...)``),
and tests outside this package never run while the loop does.
"""
from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from ...conftest import ROOT, wait_until
from ...processes import Project, free_port, stop_serve

CHROMIUM = Path("/usr/bin/chromium")
#: Playwright already passes --no-sandbox (chromium_sandbox=False): chromium's sandbox refuses
#: to start as root, which CI is. Shared memory goes to /tmp, as containers keep /dev/shm small.
CHROMIUM_ARGS = ["--disable-dev-shm-usage"]
VIEWPORT = {"width": 1280, "height": 800}
#: Milliseconds any Playwright action or ``expect`` waits before failing the test.
TIMEOUT_MS = 15_000
SCREENSHOTS = ROOT / "docs" / "screenshots"

#: Extra tasks beside the examples (``scan_library``, ``cleanup_orphaned_resources``,
#: ``evaluate_rules``). Add a ``[tasks.<id>]`` table here; callables live in tests/sample_tasks.py.
DEFINITIONS = """
[tasks.items]
title = "Items (test)"
callable = "tests.sample_tasks.items"
max_concurrent = 10
parameters = [{ key = "count", type = "number", default = 10 }]

[tasks.hostile]
title = "Hostile <b>output</b> (test)"
callable = "tests.sample_tasks.hostile"

[tasks.cooperative]
title = "Cooperative (test)"
callable = "tests.sample_tasks.cooperative"
on_overlap = "queue"
parameters = [{ key = "seconds", type = "number", default = 30 }]

[tasks.gated_command]
title = "Gated command (test)"
kind = "command"
# Markup and bytes that are not UTF-8, then a wait for the file named by its argument (the test
# creates it), then a last line and a failing exit.
command = 'printf "<script>window.pwned = 1</script> caf\\351 \\377\\n"; while [ ! -e "$1" ]; do sleep 0.05; done; printf "after the gate\\n"; exit 3'
parameters = [{ key = "gate", type = "string", kind = "arg" }]
timeout = 60

[tasks.pinger]
title = "Pinger (test)"
kind = "service"
command = 'echo up; exec sleep 300'
autostart = false
healthy_after = 2
"""

#: A watcher of a folder of the serve's own (``Serve.dropbox``), disabled, as the example is.
WATCHER = """
[tasks.dropbox]
title = "Dropbox watcher (test)"
kind = "watcher"
enabled = false
paths = ["{dropbox}"]
quiet_delay = 1
target = "items"
target_parameters = {{ count = 2 }}
"""

#: Parameters that make the example scan (160 files at ``pace`` seconds each) take well under a second.
FAST_SCAN = {"pace": 0.001}


class Login(NamedTuple):
    username: str
    password: str


ADMIN = Login("admin", "browser-admin-password")
STAFF = Login("viewer", "browser-viewer-password")

MAKE_USERS = f"""
from django.contrib.auth.models import Permission, User
from tasks_app.services import keys
User.objects.create_superuser({ADMIN.username!r}, password={ADMIN.password!r})
staff = User.objects.create_user({STAFF.username!r}, password={STAFF.password!r}, is_staff=True)
staff.user_permissions.set(Permission.objects.filter(content_type__app_label="tasks_app", codename__startswith="view_"))
print(keys.create_key(name="browser-tests", scopes=["tasks:manage"], owner=None, expires_in=None)[1])
"""


@dataclass
class Serve:
    """The running `manage.py serve` the browser tests drive."""

    base_url: str
    project: Project
    process: subprocess.Popen[bytes]
    log_path: Path
    api_key: str
    dropbox: Path
    """The folder the ``dropbox`` watcher watches."""

    def url(self, path: str) -> str:
        return self.base_url + path

    def manage(self, *args: str) -> str:
        """Run a management command on the serve's database; its stdout."""
        return self.project.manage(*args).stdout

    def api(self, method: str, path: str, **body: Any) -> requests.Response:
        """Call the REST API with a tasks:manage key (setting up data is faster here than clicking)."""
        return requests.request(method, self.url(f"/api/{path}"), json=body or None, timeout=10,
                                headers={"X-API-Key": self.api_key})

    def trigger(self, task_id: str, *, dry_run: bool = False, **parameters: Any) -> str:
        """Queue a run through the API; its id."""
        response = self.api("POST", f"tasks/{task_id}/run", parameters=parameters, dry_run=dry_run)
        assert response.status_code == 202, response.text
        return response.json()["run_id"]

    def wait_for_run(self, run_id: str, *, timeout: float = 20) -> dict[str, Any]:
        """The run as the API shows it, once it has ended."""
        def ended() -> dict[str, Any] | None:
            response = self.api("GET", f"runs/{run_id}")
            run = response.json() if response.status_code == 200 else None
            return run if run and run["status"] not in ("queued", "running") else None
        return wait_until(ended, timeout=timeout, interval=0.1, what=f"run {run_id} to end")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="package")
def serve(process_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """The real serve every browser test drives: SIGTERM at the end, killed with its children if slow."""
    folder = tmp_path_factory.mktemp("browser")
    definitions = folder / "taskdeck.toml"
    (folder / "dropbox").mkdir()
    definitions.write_text(DEFINITIONS + WATCHER.format(dropbox=folder / "dropbox"), encoding="utf-8")
    env = {
        **process_env,
        "TASKDECK_DEFINITIONS": str(definitions),
        "TASKDECK_DATA_DIR": str(folder / "data"),  # the example tasks change their library
    }
    env.pop("TASKDECK_EXTRA_APPS", None)  # the default: the examples app
    project = Project(folder / "db.sqlite3", env)
    project.manage("migrate", "--noinput", "-v0")
    api_key = project.manage("shell", "-c", MAKE_USERS).stdout.split()[-1]
    port = free_port()
    log_path = folder / "serve.log"
    process = project.start_serve(port, log_path)
    try:
        yield Serve(f"http://127.0.0.1:{port}", project, process, log_path, api_key, folder / "dropbox")
    finally:
        stop_serve(process, log=log_path)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Headless Debian chromium (see the module docstring for why it lives no longer than the package)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the admin browser tests need it; run scripts/install-test-deps")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, chromium_sandbox=False, args=CHROMIUM_ARGS,
        )
        try:
            yield browser
        finally:
            browser.close()


def new_context(browser: Browser, serve: Serve, storage_state: Any = None) -> BrowserContext:
    context = browser.new_context(base_url=serve.base_url, viewport=VIEWPORT, storage_state=storage_state)
    context.set_default_timeout(TIMEOUT_MS)
    return context


def open_page(context: BrowserContext) -> Iterator[Page]:
    """A page of ``context``, closed afterwards; an uncaught JavaScript error in it fails the test."""
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(f"{error.page.url if error.page else '?'}: {error.error}"))
    try:
        yield context.new_page()
    finally:
        context.close()
    assert not errors, "uncaught JavaScript errors:\n" + "\n".join(errors)


def submit_login(page: Page, user: Login) -> None:
    """Fill in and send the real login form."""
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Log in").click()


def log_in(page: Page, user: Login) -> None:
    """Through the real login form, landing on the admin index."""
    submit_login(page, user)
    expect(page).to_have_url(re.compile(r"/admin/$"))


@pytest.fixture(scope="package")
def login_states() -> dict[str, Any]:
    """Each user's cookies after logging in, filled on first use: one form login per user.
    A test that logs out ends that session on the server; it should use ``anonymous_page`` instead."""
    return {}


def logged_in_page(browser: Browser, serve: Serve, user: Login, states: dict[str, Any]) -> Iterator[Page]:
    if user.username not in states:
        context = new_context(browser, serve)
        log_in(context.new_page(), user)
        states[user.username] = context.storage_state()
        context.close()
    yield from open_page(new_context(browser, serve, states[user.username]))


@pytest.fixture
def admin_page(browser: Browser, serve: Serve, login_states: dict[str, Any]) -> Iterator[Page]:
    """A fresh page logged in as ADMIN (superuser); ``page.goto("/admin/…")`` takes paths."""
    yield from logged_in_page(browser, serve, ADMIN, login_states)


@pytest.fixture
def staff_page(browser: Browser, serve: Serve, login_states: dict[str, Any]) -> Iterator[Page]:
    """A fresh page logged in as STAFF: staff, may view tasks_app's models, change nothing."""
    yield from logged_in_page(browser, serve, STAFF, login_states)


@pytest.fixture
def anonymous_page(browser: Browser, serve: Serve) -> Iterator[Page]:
    """A fresh page with no session."""
    yield from open_page(new_context(browser, serve))


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Save the page as docs/screenshots/<name>.tmp.png (git ignores it), or as the committed
    <name>.png when UPDATE_SCREENSHOTS=1 (``make screenshots``): a plain test run leaves the
    tree clean, although every run's ids and times differ."""
    suffix = ".png" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else ".tmp.png"
    path = SCREENSHOTS / f"{name}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=full_page, animations="disabled")
    return path

