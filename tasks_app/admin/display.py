"""Small pieces of HTML the admin pages share: status badges, durations, the durations chart.

Everything that came from a task or a run (titles, messages, output) goes through
``format_html`` here or Django's autoescaping in the templates, never into a string by hand.
"""
from __future__ import annotations

import zoneinfo
from html import escape
from collections.abc import Sequence
from datetime import datetime

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil

from tasks_app.models import InstanceState, Run, RunStatus, TaskStatus, WatcherState
from tasks_app.selectors import RecentRun

def status_badge(status: str, label: str | None = None) -> SafeString:
    """A coloured pill; the colour comes from the status alone (static/taskdeck/admin.css)."""
    if label is None:
        # A run's status, or a task's (selectors.task_status): the two share queued and running.
        label = RunStatus(status).label if status in RunStatus.values else \
            TaskStatus(status).label if status in TaskStatus.values else \
            InstanceState(status).label if status in InstanceState.values else \
            WatcherState(status).label if status in WatcherState.values else status.capitalize()
    return format_html('<span class="td-badge td-badge-{}">{}</span>', status, label)


def duration_text(seconds: float | None) -> str:
    """``0.4 s``, ``12.3 s``, ``4 min 10 s``, ``2 h 5 min``; ``-`` when it did not run."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def relative_time(moment: datetime | None, *, now: datetime) -> str:
    """``in 5 minutes`` or ``3 hours ago``, at the coarsest unit that says it."""
    if moment is None:
        return "-"
    if abs((moment - now).total_seconds()) < 60:
        return "just now" if moment <= now else "in under a minute"
    if moment >= now:
        return f"in {timeuntil(moment, now, depth=1)}"
    return f"{timesince(moment, now, depth=1)} ago"


def eta_seconds(run: Run, *, now: datetime) -> float | None:
    """Time left at the pace so far: elapsed × (100 − p) / p, once some progress is reported."""
    percent = run.percent
    if run.status != RunStatus.RUNNING or not run.started_at or not percent or percent >= 100:
        return None
    elapsed = (now - run.started_at).total_seconds()
    return max(0.0, elapsed * (100 - percent) / percent)


CHART_BARS = 20
CHART_HEIGHT = 22
BAR_WIDTH = 5
BAR_GAP = 2


def durations_chart(runs: Sequence[RecentRun]) -> SafeString:
    """An inline SVG of the last runs' durations, oldest on the left, each bar coloured by its
    outcome; a run that never started (skipped, cancelled while queued) is a short grey stub."""
    if not runs:
        return format_html('<span class="td-muted">{}</span>', "no runs yet")
    shown = list(reversed(runs[:CHART_BARS]))
    longest = max((run.duration or 0.0 for run in shown), default=0.0) or 1.0
    # Plain f-strings with every text escaped by hand: a list page draws 2,000 bars, and
    # format_html's lazy-aware escaping of each number cost more than the rest of the page.
    rects = []
    for index, run in enumerate(shown):
        height = 2 if run.duration is None else max(2, round(CHART_HEIGHT * run.duration / longest))
        tip = f"{run.status} · {duration_text(run.duration)} · {run.created_at:%Y-%m-%d %H:%M} UTC"
        rects.append(f'<rect x="{index * (BAR_WIDTH + BAR_GAP)}" y="{CHART_HEIGHT - height}" width="{BAR_WIDTH}" '
                     f'height="{height}" class="td-bar td-bar-{escape(run.status)}"><title>{escape(tip)}</title></rect>')
    width = len(shown) * (BAR_WIDTH + BAR_GAP) - BAR_GAP
    return mark_safe(  # noqa: S308 (numbers, and text escaped above)
        f'<svg class="td-chart" width="{width}" height="{CHART_HEIGHT}" viewBox="0 0 {width} {CHART_HEIGHT}" '
        f'role="img" aria-label="Durations of the last {len(shown)} runs">{"".join(rects)}</svg>')


def fire_time_text(moment: datetime, *, timezone: str) -> str:
    """``Mon 23 Nov 2026, 03:00 UTC`` and, for a task in another zone, its wall-clock time there."""
    text = f"{moment:%a %d %b %Y, %H:%M} UTC"
    if timezone and timezone != "UTC":
        local = moment.astimezone(zoneinfo.ZoneInfo(timezone))
        text += f" · {local:%a %H:%M} {timezone}"
    return text
