"""Template tags for the admin pages: the dashboard on the admin index, and status badges."""
from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from tasks_app.admin import dashboard, display

register = template.Library()


@register.simple_tag(takes_context=True)
def taskdeck_dashboard(context: dict[str, Any]) -> str:
    """The dashboard for users who may see runs; nothing for the others."""
    request = context["request"]
    if not dashboard.can_see(request):
        return SafeString("")
    return dashboard.render_panel(request)  # a template's output: escaped, and marked safe by Django


@register.simple_tag
def status_badge(status: str, label: str | None = None) -> SafeString:
    return display.status_badge(status, label)


@register.filter
def duration(seconds: float | None) -> str:
    return display.duration_text(seconds)


@register.simple_tag
def since(moment: Any, now: Any) -> str:
    return display.relative_time(moment, now=now)
