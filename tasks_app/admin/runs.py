"""The run list and the run page, and the activity list.

The run page is the one an operator watches: status, a progress bar with percent, message and
ETA, the activity table (filtered, paginated, growing while the run goes), the captured output
tailing live, the summary, a cancel button, and for superusers the traceback. Its live parts
are refreshed from ``<id>/live/`` by static/taskdeck/live.js when the run's events arrive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.safestring import SafeString

from tasks_app import clock, selectors, services
from tasks_app.admin import dashboard, display
from tasks_app.admin.actions import apply_each, live_fragments
from tasks_app.exceptions import TaskdeckError
from tasks_app.models import Activity, Run

ACTIVITY_PER_PAGE = 50
#: Output shown when the page loads; the rest is a click away in the API (``/api/runs/<id>/log``).
OUTPUT_TAIL_BYTES = 64 * 1024
#: Output sent by one live refresh at most; a client far behind catches up over a few refreshes.
OUTPUT_CHUNK_BYTES = 256 * 1024


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    change_form_template = "admin/tasks_app/run/change_form.html"
    list_display = ("short_id", "task", "status_badge", "end_reason", "trigger", "triggered_by", "created_at",
                    "duration_text", "progress_text")
    # No date_hierarchy: its links need every distinct day of the run table (0.4 s at 50,000 runs).
    list_filter = ("status", "end_reason", "trigger", "dry_run", ("created_at", admin.DateFieldListFilter), "task")
    search_fields = ("id", "task__id", "task__title", "triggered_by", "error")
    show_full_result_count = False  # one count per page, not two
    list_select_related = ("task",)
    actions = ("cancel_runs",)
    #: What never changes once the run exists; everything that does is in the live panel above it.
    fieldsets = (
        ("Request", {"fields": ("id", "task", "trigger", "triggered_by", "parameters", "dry_run", "attempt", "retry_of",
                                "created_at")}),
    )
    readonly_fields = fieldsets[0][1]["fields"]

    class Media:
        css = {"all": ("taskdeck/admin.css",)}  # the status badges of the list

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        """Without the traceback (large, at worst): the run page reads it when it shows it. The
        log is not in the row; the page reads its tail from the chunks."""
        return super().get_queryset(request).defer("traceback")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or not obj.is_active)

    def has_run_permission(self, request: HttpRequest) -> bool:
        """Cancelling is part of running (API scope tasks:run)."""
        return request.user.has_perm("tasks_app.run_task")

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

    @admin.display(description="Status", ordering="status")
    def status_badge(self, run: Run) -> SafeString:
        return display.status_badge(run.status)

    @admin.display(description="Duration")
    def duration_text(self, run: Run) -> str:
        return display.duration_text(run.duration)

    @admin.display(description="Progress")
    def progress_text(self, run: Run) -> str:
        if run.percent is None:
            return run.progress_message or "-"
        return f"{run.percent:.0f}% {run.progress_message}".strip()

    @admin.action(description="Cancel selected runs", permissions=["run"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        apply_each(
            self, request, queryset,
            lambda run: services.cancel_run(run.pk),
            lambda _, run: f"Run {str(run.id)[:8]}: {'cancel requested' if run.is_active else run.status}.",
        )

    # --- The run page ----------------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("dashboard/live/", view(dashboard.live_view), name="tasks_app_dashboard_live"),
            path("<path:object_id>/live/", view(self.live_view), name="tasks_app_run_live"),
            path("<path:object_id>/cancel/", view(self.cancel_view), name="tasks_app_run_cancel"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        run = self.get_object(request, unquote(object_id))
        extra = {**(extra_context or {})}
        if run is not None:
            bounds = selectors.log_bounds(run.pk)
            first, size = (bounds.first, bounds.size) if bounds is not None else (0, 0)
            # The kept tail; all of it, with the marker counting every dropped byte, when it fits.
            shown_from = max(0, size - OUTPUT_TAIL_BYTES) if size - first > OUTPUT_TAIL_BYTES else 0
            tail = selectors.read_log(run.pk, offset=shown_from, limit=OUTPUT_TAIL_BYTES)
            extra.update({
                "run": run, "panel": self.render_panel(request, run),
                # Escaped by the template; invalid UTF-8 replaced; a marker line where the cap dropped bytes.
                "output": tail.as_text() if tail is not None else "", "output_size": size,
                "output_cut": shown_from > 0, "output_dropped": first,
                "live_query": request.GET.urlencode(),
            })
        return super().change_view(request, object_id, form_url, extra)

    def render_panel(self, request: HttpRequest, run: Run) -> dict[str, str]:
        """The run page's live parts, each rendered alone so the live endpoint can send them."""
        now = clock.now()
        query = ActivityQuery.from_request(request)
        rows, total = selectors.activity_page(run, page=query.page, limit=ACTIVITY_PER_PAGE,
                                              status=query.status, action=query.action)
        paginator = Paginator(range(total), ACTIVITY_PER_PAGE)
        page = paginator.get_page(query.page)
        context = {
            "run": run, "now": now, "eta": display.duration_text(display.eta_seconds(run, now=now)),
            "duration": display.duration_text(run.duration if run.ended_at else
                                              ((now - run.started_at).total_seconds() if run.started_at else None)),
            "activity": rows, "activity_total": total, "query": query,
            "summary": summary_rows(run.summary),
            "show_traceback": request.user.is_superuser and bool(run.traceback),
            "page_obj": page, "choices": selectors.activity_choices(run),
            "page_links": {"first": query.link(1), "previous": query.link(page.number - 1),
                           "next": query.link(page.number + 1), "last": query.link(paginator.num_pages)},
            "can_cancel": run.is_active and self.has_run_permission(request),
            "cancel_url": reverse("admin:tasks_app_run_cancel", args=[run.pk]),
        }
        return {name: render_to_string(f"admin/tasks_app/run/{name}.html", context, request=request)
                for name in ("status", "progress", "outcome", "activity", "details")}

    def live_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The page's live parts, and the output written after byte ``?log_offset=``."""
        run = self.get_object(request, unquote(object_id))
        if run is None or not self.has_view_permission(request, run):
            raise Http404
        try:
            offset = max(0, int(request.GET.get("log_offset", "0")))
        except ValueError:
            offset = 0
        piece = selectors.read_log(run.pk, offset=offset, limit=OUTPUT_CHUNK_BYTES)
        # Where the cap dropped bytes the text starts with a marker line, then the kept output.
        log = ({"text": piece.as_text(), "offset": piece.end, "size": piece.size} if piece is not None
               else {"text": "", "offset": offset, "size": offset})
        return live_fragments(self.render_panel(request, run), active=run.is_active, percent=run.percent, log=log)

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST from the run page's cancel button (CSRF-checked); back to the page with a message."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_run_permission(request):
            raise PermissionDenied
        run = self.get_object(request, unquote(object_id))
        if run is None:
            raise Http404
        try:
            run = services.cancel_run(run.pk)
        except TaskdeckError as error:
            self.message_user(request, error.detail, messages.WARNING)
        else:
            done = "cancel requested" if run.is_active else run.status
            self.message_user(request, f"Run {str(run.id)[:8]}: {done}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:tasks_app_run_change", args=[run.pk]))


def summary_rows(summary: Any) -> list[tuple[str, str]]:
    """A run's summary as label/text rows: ``{"actions": {"keep": 3}}`` reads ``keep: 3``."""
    if not isinstance(summary, dict):
        return []
    rows = []
    for name, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{key}: {count}" for key, count in value.items())
        rows.append((str(name), str(value)))
    return rows


@dataclass(frozen=True)
class ActivityQuery:
    """The activity table's page and filters, from the run page's query string."""

    page: int
    status: str
    action: str

    @classmethod
    def from_request(cls, request: HttpRequest) -> ActivityQuery:
        try:
            page = max(1, int(request.GET.get("activity_page", "1")))
        except ValueError:
            page = 1
        return cls(page=page, status=request.GET.get("activity_status", ""),
                   action=request.GET.get("activity_action", ""))

    def link(self, page: int) -> str:
        """This view's query string at another page (the filters kept)."""
        query = QueryDict(mutable=True)
        for name, value in (("activity_status", self.status), ("activity_action", self.action)):
            if value:
                query[name] = value
        if page > 1:
            query["activity_page"] = str(page)
        return f"?{query.urlencode()}"


class RecentValuesFilter(admin.SimpleListFilter):
    """A filter on one activity column whose choices come from the latest rows only.

    Django's own filter lists every distinct value of the column, reading the whole table on each
    page view, and the activity table grows by every item of every run (8 ms at 50,000 rows,
    seconds at millions). A value seen only in older rows still filters, through the URL."""

    SAMPLE = 10_000
    field = ""

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        oldest = Activity.objects.order_by("-id").values_list("id", flat=True)[self.SAMPLE - 1:self.SAMPLE].first()
        recent = Activity.objects.filter(id__gte=oldest) if oldest is not None else Activity.objects.all()
        values = recent.order_by(self.field).values_list(self.field, flat=True).distinct()
        return [(value, value) for value in values if value]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Activity]) -> QuerySet[Activity]:
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


def recent_values_filter(field: str) -> type[RecentValuesFilter]:
    return type(f"Recent{field.title()}Filter", (RecentValuesFilter,),
                {"field": field, "parameter_name": field, "title": field.replace("_", " ")})


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "run_short", "item_id", "item_title", "item_type", "action", "status", "message")
    list_filter = tuple(recent_values_filter(field) for field in ("status", "action", "item_type"))
    search_fields = ("item_id", "item_title", "message", "run__id")
    list_select_related = ("run",)
    show_full_result_count = False  # one count of a table that grows by every item of every run

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Activity | None = None) -> bool:
        return False

    @admin.display(description="Run")
    def run_short(self, activity: Activity) -> str:
        return str(activity.run_id)[:8]
