"""The task list, the task page, and the run-now form.

The list shows each task's live state (status, schedule and next run, last run, a chart of the
last 20 durations); the page edits schedule and policy (saved through the services, previewing
the next fire times) and lists recent runs; "Run now" builds a form from the task's parameters.
Live cells are ``data-live-fragment`` elements that static/taskdeck/live.js refreshes from
``live/`` when a task's events arrive over the WebSocket.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from tasks_app import clock, selectors, services
from tasks_app.access.callers import caller_label
from tasks_app.admin import display
from tasks_app.admin.actions import apply_each, live_fragments
from tasks_app.admin.forms import PARAMETER_PREFIX, SERVICE_FORM_FIELDS, RunNowForm, TaskForm
from tasks_app.definitions.process import PROCESS_FIELDS
from tasks_app.definitions.service import SERVICE_FIELDS
from tasks_app.definitions.validate import OPERATOR_FIELDS
from tasks_app.exceptions import InvalidParameters, TaskdeckError
from tasks_app.models import POLICY_FIELDS, DefinitionSource, RunTrigger, Task, TaskKind, TaskStatus, TaskTrigger
from tasks_app.scheduling import cron

#: Runs drawn in a task's durations chart, and listed on its page.
RECENT_RUNS = 20


@dataclass
class TaskRow:
    """What a task's row shows beyond its fields, read for the whole page at once."""

    status: str
    recent: list[selectors.RecentRun]


def read_rows(tasks: list[Task]) -> dict[str, TaskRow]:
    """A service's status is its roll-up state (running, degraded, fatal...), not its runs'."""
    statuses = selectors.task_statuses(tasks)
    statuses.update({task_id: state for task_id, (state, _) in selectors.service_states(tasks).items()})
    recent = selectors.recent_runs([task.pk for task in tasks], limit=RECENT_RUNS)
    return {task.pk: TaskRow(TaskStatus.REMOVED if task.is_removed else statuses[task.pk], recent[task.pk]) for task in tasks}


#: What the service buttons ask (services.start_service...), and how the message says it.
SERVICE_VERBS = {"start": services.start_service, "stop": services.stop_service, "restart": services.restart_service}


def render_instances(request: HttpRequest, task: Task, *, can_run: bool) -> str:
    """A service's instances, live: state, pid, uptime, restarts, last exit, next start."""
    state, instances = selectors.service_states([task])[task.pk]
    return render_to_string("admin/tasks_app/task/instances.html", {
        "task": task, "state": state, "instances": instances, "now": clock.now(), "can_run": can_run,
        "verbs": list(SERVICE_VERBS),
    }, request=request)


def render_cells(task: Task, row: TaskRow, *, now: datetime) -> dict[str, SafeString]:
    """The live cells of one task's row (and of its page's header)."""
    last = row.recent[0] if row.recent else None
    if last is None:
        last_run = format_html('<span class="td-muted">{}</span>', "never")
    else:
        link = reverse("admin:tasks_app_run_change", args=[last.id])
        last_run = format_html('<a href="{}">{}</a><br><span class="td-muted">{}</span>', link,
                               display.status_badge(last.status), display.relative_time(last.created_at, now=now))
    if task.next_run_at and task.enabled and not task.is_removed:
        next_run = format_html('next <time datetime="{}" title="{} UTC">{}</time>', task.next_run_at.isoformat(),
                               f"{task.next_run_at:%Y-%m-%d %H:%M:%S}", display.relative_time(task.next_run_at, now=now))
    else:
        next_run = format_html('<span class="td-muted">{}</span>', "disabled" if not task.enabled else "on demand")
    return {
        "status": display.status_badge(row.status),
        "schedule": format_html('<span class="td-trigger">{}</span> {}<br>{}', trigger_kind(task),
                                "" if task.trigger == TaskTrigger.MANUAL else cron.describe(task), next_run),
        "last_run": last_run,
        "chart": display.durations_chart(row.recent),
    }


NO_FIRE_TIMES = "No scheduled runs: the task runs on demand."


def fire_times(task: Task) -> list[dict[str, str]]:
    """The next five fire times of a (maybe unsaved) schedule, for the preview on the task page."""
    return [{"iso": moment.isoformat(), "text": display.fire_time_text(moment, timezone=task.timezone)}
            for moment in cron.upcoming(task, after=clock.now(), count=5)]


def trigger_kind(task: Task) -> str:
    """How the task starts: scheduled, manual, or by its kind (watcher, service), and at start-up."""
    text = task.get_kind_display() if task.kind in (TaskKind.WATCHER, TaskKind.SERVICE) else TaskTrigger(task.trigger).label
    return f"{text}, at start-up" if task.run_on_start else text


PROCESS_HELP = ("For command and service tasks (kind: Shell command, Service): command or argv, and how the process "
                "runs and stops. Left as offered, a field takes its default; a python task has none of these.")

SERVICE_HELP = ("For service tasks (kind: Service): how many processes are kept running, how they restart, their "
                "start order and health. A service is started, stopped and restarted by its supervisor: it has no "
                "schedule, timeout, retries or parameters, and is not run on demand.")


def _setting_text(value: Any) -> str:
    """A process setting as one line: lists and tables as JSON, none as a dash."""
    if value is None or value == "":
        return "-"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class TaskChangeList(ChangeList):
    """Reads each row's live state for the whole page in a few queries, not a few per row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        tasks = list(self.result_list)
        rows = read_rows(tasks)
        now = clock.now()
        for task in tasks:
            task.cells = render_cells(task, rows[task.pk], now=now)
        self.result_list = tasks


def live_cell(name: str, description: str) -> Any:
    """A list column whose content live.js replaces, keyed ``<name>:<task id>``."""
    @admin.display(description=description)
    def cell(self: TaskAdmin, task: Task) -> SafeString:
        return format_html('<span data-live-fragment="{}:{}">{}</span>', name, task.pk, task.cells[name])
    return cell


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    form = TaskForm
    change_list_template = "admin/tasks_app/task/change_list.html"
    change_form_template = "admin/tasks_app/task/change_form.html"
    list_display = ("task_text", "status_cell", "schedule_cell", "last_run_cell", "chart_cell", "enabled")
    list_display_links = ("task_text",)
    list_filter = ("kind", "enabled", "type", "source", "on_overlap")
    search_fields = ("id", "title", "description")
    actions = ("run_now", "enable", "disable", "cancel_active")
    readonly_fields = ("id", "kind", "callable", "source", "last_run_at", "next_run_at", "fire_times_preview",
                       "removed_at", "created_at", "updated_at", "process_settings")
    fieldsets = (
        (None, {"fields": ("id", "title", "description", "type", "kind", "callable", "source", "enabled", "manual_run")}),
        ("Schedule", {"fields": ("cron_string", "timezone", "interval", "interval_unit", "fire_times_preview",
                               "last_run_at", "next_run_at"),
                      "description": "A cron expression (in its time zone) or an interval, not both; neither "
                                     "for a task that only runs on demand."}),
        ("Policy", {"fields": POLICY_FIELDS}),
        ("Capabilities", {"fields": ("supports_cancel", "supports_dry_run", "supports_history", "parameters")}),
        ("Bookkeeping", {"classes": ("collapse",), "fields": ("removed_at", "created_at", "updated_at")}),
    )

    status_cell = live_cell("status", "Status")
    schedule_cell = live_cell("schedule", "Schedule")
    last_run_cell = live_cell("last_run", "Last run")
    chart_cell = live_cell("chart", f"Last {RECENT_RUNS} runs")

    # --- Permissions: Django's, plus run (tasks:run) and manage (tasks:manage) -------------------

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tasks_app.run_task")

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tasks_app.manage_task")

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Tasks made in the admin are command, service or watcher tasks: superusers only, since
        whatever they define is executed."""
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        if obj is not None and obj.kind != TaskKind.PYTHON and not request.user.is_superuser:
            return False  # a command line is executed as written: only superusers touch one
        return super().has_change_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Task | None = None) -> Any:
        """A new task (superusers only) names its id, kind and callable; afterwards they are fixed.
        A task declared in code or the definitions file is owned by its declaration: every start
        writes it again, so only the operator fields (enabled and the schedule, which are kept
        across reloads) are editable here; the rest is shown as declared."""
        if obj is None:
            return tuple(name for name in self.readonly_fields if name not in ("id", "kind", "callable"))
        if not obj.edited_here:
            shown = [name for _, options in self.fieldsets for name in options["fields"]]
            return tuple(dict.fromkeys([*self.readonly_fields, *(name for name in shown if name not in OPERATOR_FIELDS)]))
        return self.readonly_fields

    def get_fieldsets(self, request: HttpRequest, obj: Task | None = None) -> Any:
        """A command task's process settings after its first fieldset: as form fields where they
        can be edited (a new task, one made here), else as declared (``process_settings``)."""
        fieldsets = list(self.fieldsets)
        if obj is None:
            fieldsets[1:1] = [("Process", {"fields": PROCESS_FIELDS, "description": PROCESS_HELP}),
                              ("Service", {"fields": SERVICE_FORM_FIELDS, "description": SERVICE_HELP})]
        elif obj.kind in (TaskKind.COMMAND, TaskKind.SERVICE):
            editable = obj.edited_here and self.has_change_permission(request, obj)
            if not editable:
                fieldsets.insert(1, ("Process", {"fields": ("process_settings",)}))
            elif obj.kind == TaskKind.COMMAND:
                fieldsets.insert(1, ("Process", {"fields": PROCESS_FIELDS}))
            else:
                fieldsets[1:1] = [("Process", {"fields": PROCESS_FIELDS}),
                                  ("Service", {"fields": SERVICE_FORM_FIELDS, "description": SERVICE_HELP})]
        if obj is None or obj.source == DefinitionSource.ADMIN:
            return fieldsets
        if obj.edited_here:
            note = f"Imported ({obj.get_source_display()}): importing its file again writes over edits made here."
        else:
            where = "in code (@task)" if obj.source == DefinitionSource.CODE else "in the definitions file"
            note = f"Declared {where}: change it there (an edit here would be undone at the next start)."
        return [(name, {**options, "description": note} if name in ("Process", "Policy", "Capabilities") else options)
                for name, options in fieldsets]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return TaskChangeList

    def save_model(self, request: HttpRequest, obj: Task, form: forms.ModelForm, change: bool) -> None:
        """Through ``services.save_task``, as the API writes: the changed fields only, under the
        task's row lock; operator fields remembered across definition reloads; next_run_at
        recomputed; announced (task:updated). The form already showed any rule broken."""
        saved = services.save_task(obj, changed=form.changed_task_fields, created=not change)
        obj.next_run_at, obj.source = saved.next_run_at, saved.source

    @admin.display(description="Task", ordering="id")
    def task_text(self, task: Task) -> SafeString:
        return format_html('{}<br><span class="td-muted">{}</span>', task.title or task.pk, task.pk)

    @admin.display(description="Process settings")
    def process_settings(self, task: Task) -> SafeString:
        """A command or service task's settings, read-only: declared elsewhere, or shown to someone
        who may not change them. Env values and the secrets file's path are for operators to see;
        what that file holds is never read here."""
        settings = task.process or {}
        rows = ((name, _setting_text(settings[name])) for name in (*PROCESS_FIELDS, *SERVICE_FIELDS)
                if name in settings)
        return format_html('<table class="td-process">{}</table>',
                           format_html_join("", "<tr><th>{}</th><td><code>{}</code></td></tr>", rows))

    @admin.display(description="Next five fire times")
    def fire_times_preview(self, task: Task) -> SafeString:
        """Computed again as the schedule fields change, before saving (static/taskdeck/live.js)."""
        items = format_html_join("", '<li><time datetime="{}">{}</time></li>',
                                 ((moment["iso"], moment["text"]) for moment in fire_times(task)))
        if not items:
            items = format_html('<li class="td-muted">{}</li>', NO_FIRE_TIMES)
        url = reverse("admin:tasks_app_task_schedule_preview", args=[quote(task.pk)]) if task.pk else ""
        return format_html('<ol class="td-fire-times" data-schedule-preview="{}" data-fire-times>{}</ol>', url, items)

    # --- Pages of its own: run now, live cells, schedule preview ---------------------------------

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("live/", view(self.live_view), name="tasks_app_task_live"),
            path("<path:object_id>/run/", view(self.run_view), name="tasks_app_task_run"),
            path("<path:object_id>/service/<str:verb>/", view(self.service_view), name="tasks_app_task_service"),
            path("<path:object_id>/schedule-preview/", view(self.schedule_preview_view),
                 name="tasks_app_task_schedule_preview"),
            *super().get_urls(),
        ]

    def live_view(self, request: HttpRequest) -> JsonResponse:
        """``?keys=a,b``: the live cells of those tasks (the rows on the page asking, or the ones its
        events were about); ``&history=1`` adds their recent-runs tables (the task page)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        ids = [key for key in request.GET.get("keys", "").split(",") if key][:200]
        tasks = list(Task.objects.filter(pk__in=ids))
        rows = read_rows(tasks)
        now = clock.now()
        fragments = {f"{name}:{task.pk}": html for task in tasks
                     for name, html in render_cells(task, rows[task.pk], now=now).items()}
        if request.GET.get("history"):  # the task page's table of recent runs, and a service's instances
            for task in tasks:
                fragments[f"history:{task.pk}"] = self.render_history(request, task)
                if task.kind == TaskKind.SERVICE:
                    fragments[f"instances:{task.pk}"] = render_instances(request, task,
                                                                         can_run=self.has_run_permission(request))
        return live_fragments(fragments)

    def service_view(self, request: HttpRequest, object_id: str, verb: str) -> HttpResponse:
        """POST: start, stop or restart a service (``run_task`` permission), back to its page."""
        task = self.get_object(request, unquote(object_id))
        if task is None or verb not in SERVICE_VERBS:
            raise Http404
        if request.method != "POST" or not self.has_run_permission(request):
            raise PermissionDenied
        try:
            SERVICE_VERBS[verb](task.pk)
        except TaskdeckError as error:
            self.message_user(request, error.detail, messages.ERROR)
        else:
            self.message_user(request, f"{task.pk}: {verb} requested; its supervisor acts within a second.",
                              messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:tasks_app_task_change", args=[quote(task.pk)]))

    def render_history(self, request: HttpRequest, task: Task) -> str:
        runs, total = selectors.page_of_runs(page=1, limit=RECENT_RUNS, task_id=task.pk)
        return render_to_string("admin/tasks_app/task/history.html", {
            "runs": runs, "total": total, "task": task, "now": clock.now(),
            "all_runs": reverse("admin:tasks_app_run_changelist") + f"?task__id__exact={task.pk}",
        }, request=request)

    def schedule_preview_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The next five fire times of the schedule being typed (not saved): ``?cron_string=``
        with ``timezone=``, or ``interval=`` with ``interval_unit=``."""
        task = self.get_object(request, unquote(object_id))
        if task is None or not self.has_view_or_change_permission(request, task):
            raise Http404
        form = TaskForm(request.GET, instance=task)
        form.is_valid()
        errors = {name: [str(error) for error in form.errors.get(name, [])]
                  for name in ("cron_string", "timezone", "interval", "interval_unit")}
        if any(errors.values()):
            return JsonResponse({"times": [], "describe": "", "errors": errors})
        draft = Task(cron_string=form.cleaned_data["cron_string"], timezone=form.cleaned_data["timezone"],
                     interval=form.cleaned_data["interval"], interval_unit=form.cleaned_data["interval_unit"])
        return JsonResponse({"times": fire_times(draft), "describe": cron.describe(draft), "errors": {}})

    def run_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: the task's parameters as a form. POST: ``services.trigger``, then the new run's page."""
        task = self.get_object(request, unquote(object_id))
        if task is None:
            raise Http404
        if not self.has_run_permission(request):
            raise PermissionDenied
        form = RunNowForm(task, request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                run = services.trigger(task, source=RunTrigger.MANUAL, requested_by=caller_label(request),
                                       parameters=form.parameter_values(), dry_run=form.cleaned_data.get("dry_run", False),
                                       force=form.cleaned_data["force"])
            except InvalidParameters as error:
                form.add_parameter_errors(error.errors)
            except TaskdeckError as error:
                form.add_error(None, error.detail)
            else:
                self.message_user(request, f"Run {str(run.id)[:8]} of {task.pk}: {run.status}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:tasks_app_run_change", args=[run.pk]))
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "task": task, "form": form,
            "title": f"Run {task}", "subtitle": None,
            "parameter_fields": [form[name] for name in form.fields if name.startswith(PARAMETER_PREFIX)],
            "option_fields": [form[name] for name in form.fields if not name.startswith(PARAMETER_PREFIX)],
        }
        return TemplateResponse(request, "admin/tasks_app/task/run.html", context)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        task = self.get_object(request, unquote(object_id))
        extra: dict[str, Any] = {**(extra_context or {})}
        if task is not None:
            row = read_rows([task])[task.pk]
            can_run = self.has_run_permission(request)
            extra.update({
                "task": task, "cells": render_cells(task, row, now=clock.now()),
                "history": self.render_history(request, task),
                "can_run": can_run and task.kind != TaskKind.SERVICE,
                "instances": (render_instances(request, task, can_run=can_run) if task.kind == TaskKind.SERVICE
                              else None),
                "service_verbs": list(SERVICE_VERBS) if can_run else [],
            })
        return super().change_view(request, object_id, form_url, extra)

    # --- Actions ---------------------------------------------------------------------------------

    @admin.action(description="Run selected tasks now", permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        apply_each(
            self, request, queryset,
            lambda task: services.trigger(task, source=RunTrigger.MANUAL, requested_by=caller_label(request)),
            lambda task, run: f"Run {str(run.id)[:8]} of {task.id}: {run.status}.",
        )

    @admin.action(description="Enable selected tasks", permissions=["manage"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        for task in queryset:
            services.set_operator_fields(task.pk, enabled=True)
        self.message_user(request, f"Enabled {queryset.count()} task(s).", messages.SUCCESS)

    @admin.action(description="Disable selected tasks", permissions=["manage"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        for task in queryset:
            services.set_operator_fields(task.pk, enabled=False)
        self.message_user(request, f"Disabled {queryset.count()} task(s).", messages.SUCCESS)

    @admin.action(description="Cancel active runs of selected tasks", permissions=["run"])
    def cancel_active(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        apply_each(
            self, request, queryset,
            lambda task: services.cancel_task(task.pk),
            lambda task, runs: f"{task.id}: cancelling {len(runs)} run(s).",
        )
