"""Admin for tasks, runs and activity: operators find, run and stop things here.

Actions parse the selection, call a service, and report through the messages framework.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html

from tasks_app import clock, schedules, selectors, services
from tasks_app.api import keys
from tasks_app.exceptions import TaskdeckError
from tasks_app.models import Activity, ApiKey, Run, RunTrigger, Scope, Task
from tasks_app.registry import OPERATOR_FIELDS


def caller_label(request: HttpRequest) -> str:
    return f"user:{request.user.get_username()}"


def apply_each(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    objects: Iterable[Any],
    operation: Callable[[Any], Any],
    describe: Callable[[Any, Any], str],
) -> None:
    """One service call per selected object, each outcome reported as its own admin message."""
    for obj in objects:
        try:
            result = operation(obj)
        except TaskdeckError as error:
            model_admin.message_user(request, error.detail, messages.WARNING)
        else:
            model_admin.message_user(request, describe(obj, result), messages.SUCCESS)


class RunInline(admin.TabularInline):
    model = Run
    fields = ("short_id", "status", "end_reason", "trigger", "triggered_by", "created_at", "duration_text")
    readonly_fields = fields
    ordering = ("-created_at",)
    extra = 0
    max_num = 0
    show_change_link = True
    can_delete = False
    verbose_name_plural = "Recent runs"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        return super().get_queryset(request).order_by("-created_at")

    @admin.display(description="Run")
    def short_id(self, run: Run) -> str:
        return str(run.id)[:8]

    @admin.display(description="Duration")
    def duration_text(self, run: Run) -> str:
        return _duration(run)


class TaskForm(forms.ModelForm):
    """The schedule fields checked as the API and the definitions file check them."""

    class Meta:
        model = Task
        fields = "__all__"

    def clean_cron_string(self) -> str:
        value = " ".join(self.cleaned_data.get("cron_string", "").split())
        if value and not schedules.is_valid_cron(value):
            raise forms.ValidationError("Not a 5-field cron expression (or @daily-style alias) that ever fires.")
        return value

    def clean_timezone(self) -> str:
        value = self.cleaned_data.get("timezone", "")
        if not schedules.is_valid_timezone(value):
            raise forms.ValidationError(f"Unknown time zone {value!r} (use an IANA name such as Europe/Paris).")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        interval, unit = data.get("interval"), data.get("interval_unit")
        if interval is not None and interval < 1:
            self.add_error("interval", "An interval is a whole number of at least 1.")
        if interval and not unit:
            self.add_error("interval_unit", "Give the interval's unit.")
        if interval and data.get("cron_string"):
            self.add_error("cron_string", "A task has a cron string or an interval, not both.")
        if not interval:
            data["interval_unit"] = ""
        return data


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    form = TaskForm
    list_display = ("id", "title", "kind", "trigger_text", "enabled", "status_text", "last_run_at", "next_run_at")
    list_filter = ("kind", "enabled", "type", "source", "on_overlap")
    search_fields = ("id", "title", "description")
    actions = ("run_now", "enable", "disable", "cancel_active")
    readonly_fields = ("id", "kind", "callable", "source", "last_run_at", "next_run_at", "removed_at", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("id", "title", "description", "type", "kind", "callable", "source", "enabled", "manual_run")}),
        ("Schedule", {"fields": ("cron_string", "timezone", "interval", "interval_unit", "last_run_at", "next_run_at")}),
        ("Policy", {"fields": ("on_overlap", "max_concurrent", "queue_max", "timeout", "retry_attempts", "retry_backoff",
                               "retry_delay", "catch_up", "max_catch_up_runs", "jitter", "keep_runs", "keep_for", "run_on_start")}),
        ("Capabilities", {"fields": ("supports_cancel", "supports_dry_run", "supports_history", "parameters")}),
        ("Bookkeeping", {"classes": ("collapse",), "fields": ("removed_at", "created_at", "updated_at")}),
    )
    inlines = (RunInline,)

    def save_model(self, request: HttpRequest, obj: Task, form: forms.ModelForm, change: bool) -> None:
        """Schedule and enabled changes go through the service, which records them as operator
        changes (kept across definition reloads), recomputes next_run_at and announces them."""
        super().save_model(request, obj, form, change)
        operator = {name: form.cleaned_data[name] for name in OPERATOR_FIELDS if name in form.changed_data}
        if operator:
            saved = services.set_operator_fields(obj.pk, **operator)
            obj.next_run_at = saved.next_run_at

    @admin.display(description="Trigger")
    def trigger_text(self, task: Task) -> str:
        if task.cron_string:
            return f"cron {task.cron_string} ({task.timezone})"
        if task.interval:
            return f"every {task.interval} {task.interval_unit}"
        return task.trigger

    @admin.display(description="Status")
    def status_text(self, task: Task) -> str:
        if task.is_removed:
            return "removed"
        return selectors.task_status(task)

    @admin.action(description="Run selected tasks now")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        apply_each(
            self, request, queryset,
            lambda task: services.trigger(task, source=RunTrigger.MANUAL, requested_by=caller_label(request)),
            lambda task, run: f"Run {str(run.id)[:8]} of {task.id}: {run.status}.",
        )

    @admin.action(description="Enable selected tasks")
    def enable(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        for task in queryset:
            services.set_operator_fields(task.pk, enabled=True)
        self.message_user(request, f"Enabled {queryset.count()} task(s).", messages.SUCCESS)

    @admin.action(description="Disable selected tasks")
    def disable(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        for task in queryset:
            services.set_operator_fields(task.pk, enabled=False)
        self.message_user(request, f"Disabled {queryset.count()} task(s).", messages.SUCCESS)

    @admin.action(description="Cancel active runs of selected tasks")
    def cancel_active(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        apply_each(
            self, request, queryset,
            lambda task: services.cancel_task(task.pk),
            lambda task, runs: f"{task.id}: cancelling {len(runs)} run(s).",
        )


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("short_id", "task", "status", "end_reason", "trigger", "triggered_by", "created_at", "duration_text", "progress_text")
    list_filter = ("status", "end_reason", "trigger", "dry_run", "task")
    search_fields = ("id", "task__id", "task__title", "triggered_by", "error")
    date_hierarchy = "created_at"
    list_select_related = ("task",)
    actions = ("cancel_runs",)
    fieldsets = (
        (None, {"fields": ("id", "task", "status", "end_reason", "trigger", "triggered_by", "parameters", "dry_run", "attempt", "retry_of")}),
        ("Timing", {"fields": ("created_at", "enqueued_at", "not_before", "started_at", "ended_at", "heartbeat_at", "duration_text")}),
        ("Progress", {"fields": ("progress_text", "items_processed", "items_affected", "summary")}),
        ("Outcome", {"fields": ("result", "error", "exit_code", "stop_requested", "worker_host", "worker_pid", "output_text")}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Run | None = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))
        if request.user.is_superuser:
            fieldsets.append(("Traceback (superusers only)", {"classes": ("collapse",), "fields": ("traceback_text",)}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Run | None = None) -> list[str]:
        return [field for _, options in self.get_fieldsets(request, obj) for field in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or not obj.is_active)

    def delete_model(self, request: HttpRequest, obj: Run) -> None:
        services.delete_run(obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        apply_each(
            self, request, queryset,
            lambda run: services.delete_run(run.pk),
            lambda run, _: f"Run {str(run.id)[:8]} deleted.",
        )

    @admin.display(description="Run")
    def short_id(self, run: Run) -> str:
        return str(run.id)[:8]

    @admin.display(description="Duration")
    def duration_text(self, run: Run) -> str:
        return _duration(run)

    @admin.display(description="Progress")
    def progress_text(self, run: Run) -> str:
        if run.percent is None:
            return run.progress_message or "-"
        return f"{run.percent:.0f}% {run.progress_message}".strip()

    @admin.display(description="Captured output")
    def output_text(self, run: Run) -> str:
        return format_html("<pre style='max-height:30em;overflow:auto'>{}</pre>", run.output or "(none)")

    @admin.display(description="Traceback")
    def traceback_text(self, run: Run) -> str:
        return format_html("<pre>{}</pre>", run.traceback or "(none)")

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        apply_each(
            self, request, queryset,
            lambda run: services.cancel_run(run.pk),
            lambda _, run: f"Run {str(run.id)[:8]}: {'cancel requested' if run.is_active else run.status}.",
        )


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "run_short", "item_id", "item_title", "item_type", "action", "status", "message")
    list_filter = ("status", "action", "item_type")
    search_fields = ("item_id", "item_title", "message", "run__id")
    list_select_related = ("run",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Activity | None = None) -> bool:
        return False

    @admin.display(description="Run")
    def run_short(self, activity: Activity) -> str:
        return str(activity.run_id)[:8]


def _duration(run: Run) -> str:
    duration = run.duration
    return "-" if duration is None else f"{duration:.1f} s"


class ApiKeyCreationForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple,
                                       help_text="Each scope implies the ones listed before it.")

    class Meta:
        model = ApiKey
        fields = ("name", "scopes", "expires_at", "owner")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here (shown once, on the page that follows) and revoked; never edited."""

    list_display = ("name", "prefix_text", "scopes_text", "owner", "state", "created_at", "expires_at", "last_used_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix")
    actions = ("revoke",)
    readonly_fields = ("name", "prefix_text", "scopes_text", "owner", "state", "created_at", "expires_at",
                       "revoked_at", "last_used_at")

    def get_form(self, request: HttpRequest, obj: ApiKey | None = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyCreationForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return ApiKeyCreationForm.Meta.fields if obj is None else self.readonly_fields

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None) -> Any:
        """The key exists in plain text only in this response: no redirect, no message storage."""
        if request.method == "POST" and self.has_add_permission(request):
            form = ApiKeyCreationForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                expires_in = data["expires_at"] - clock.now() if data["expires_at"] else None
                try:
                    key, plain = keys.create_key(name=data["name"], scopes=data["scopes"], owner=data["owner"],
                                                 expires_in=expires_in)
                except TaskdeckError as error:
                    form.add_error(None, error.detail)
                else:
                    context = {**self.admin_site.each_context(request), "key": key, "plain": plain,
                               "opts": self.opts, "title": "API key created"}
                    return TemplateResponse(request, "admin/tasks_app/apikey/created.html", context)
        return super().add_view(request, form_url, extra_context)

    @admin.display(description="Key")
    def prefix_text(self, key: ApiKey) -> str:
        return f"{key.prefix}…"

    @admin.display(description="Scopes")
    def scopes_text(self, key: ApiKey) -> str:
        return ", ".join(key.scopes)

    @admin.display(description="State")
    def state(self, key: ApiKey) -> str:
        if key.revoked_at:
            return "revoked"
        if key.expires_at and key.expires_at <= clock.now():
            return "expired"
        return "active"

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            keys.revoke_key(key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)
