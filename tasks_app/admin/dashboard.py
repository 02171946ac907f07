"""The dashboard at the top of the admin index: runs running and queued now (live), failures in
the last 24 hours, whether workers and the scheduler are alive, whether the database takes writes,
and what serve and the workers had to start again (``health.check``, as /api/health).

``templates/admin/index.html`` shows it through the ``{% taskdeck_dashboard %}`` tag
(tasks_app/templatetags/taskdeck_admin.py); ``live_view`` re-renders it when run events arrive.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.template.loader import render_to_string

from tasks_app import clock, health, selectors
from tasks_app.admin.actions import live_fragments
from tasks_app.conf import taskdeck_settings


def can_see(request: HttpRequest) -> bool:
    return request.user.is_active and request.user.is_staff and request.user.has_perm("tasks_app.view_run")


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    now = clock.now()
    board = selectors.dashboard(now=now, fresh_for=taskdeck_settings.HEALTH_FRESH_FOR)
    report = health.check(now=now)
    sections = [
        ("Running now", board.running, board.running_total, "Nothing is running."),
        ("Queued", board.queued, board.queued_total, "Nothing is waiting."),
        ("Failed in the last 24 hours", board.failures, board.failures_total, "No failures."),
    ]
    restarts = sorted((name, count) for name, count in report.restarts.items() if count)
    return {"board": board, "now": now, "sections": sections, "health": report, "restarts": restarts,
            "workers_ok": report.workers == "ok", "scheduler_ok": report.scheduler == "ok"}


def render_dashboard(request: HttpRequest) -> str:
    """The dashboard's content (what the live endpoint sends)."""
    return render_to_string("admin/tasks_app/dashboard.html", dashboard_context(request), request=request)


def render_panel(request: HttpRequest) -> str:
    """The dashboard with its live wrapper, for the admin index."""
    return render_to_string("admin/tasks_app/dashboard_panel.html", {"dashboard": render_dashboard(request)},
                            request=request)


def live_view(request: HttpRequest) -> JsonResponse:
    if not can_see(request):
        raise PermissionDenied
    return live_fragments({"dashboard": render_dashboard(request)})
