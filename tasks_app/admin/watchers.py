"""What the admin shows and asks of file watchers: the Watcher section of the task form (its
fields; TaskForm checks them), a watcher's live panel, and the task list's filter by RomM's
groups (scheduled, manual, watcher, service)."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string

from tasks_app import clock, selectors
from tasks_app.admin.fields import ListJSONField, TableJSONField, YesNoField
from tasks_app.definitions.watcher import EVENTS, WATCHER_FIELDS, watcher_defaults
from tasks_app.models import Task, TaskTrigger

#: The fields of the task form that become ``Task.watch`` (a watcher's).
WATCHER_FORM_FIELDS = WATCHER_FIELDS

WATCHER_HELP = ("For watcher tasks (kind: File watcher): the paths it watches, which changes count, and the task it "
                "triggers once no change has come for the quiet delay. A watcher is not run on demand (untick Manual "
                "run) and has no schedule, timeout, retries or parameters of its own: its target's apply.")


class WatcherSettingsForm(forms.Form):
    """The watcher fields of the task form (TaskForm inherits them; its clean checks them)."""

    paths = ListJSONField(required=False, help_text='Files or folders to watch, as a JSON list, like '
                                                    '["/srv/library"]; a relative one is read from the supervisor\'s '
                                                    'folder.')
    recursive = YesNoField(required=False, initial="True", help_text="Watch the folders below them too.")
    patterns = ListJSONField(required=False, help_text='Shell-style patterns a changed path must match, as a JSON list, '
                                                       'like ["*.rom", "*.zip"]. Empty: every path.')
    ignore_patterns = ListJSONField(required=False, help_text='Patterns of paths left out, like ["*.tmp", ".git"]; '
                                                              'they win over patterns.')
    events = forms.MultipleChoiceField(required=False, choices=[(event, event) for event in EVENTS],
                                       initial=list(EVENTS), widget=forms.CheckboxSelectMultiple,
                                       help_text="The kinds of change that count (a move is its old path deleted "
                                                 "and its new path created).")
    quiet_delay = forms.FloatField(required=False, min_value=0, initial=watcher_defaults()["quiet_delay"],
                                   help_text="Seconds without a change before the target is triggered.")
    target = forms.CharField(required=False, help_text="The id of the task to trigger (a python or command task).")
    target_parameters = TableJSONField(required=False, help_text='The target\'s parameters, as a JSON object, like '
                                                                 '{"platforms": "gba"}. Its changed_paths, when it '
                                                                 'declares one, is filled in.')


def render_watcher(request: HttpRequest, task: Task) -> str:
    """A watcher's state, live: its paths as watched, pending changes, its last change and trigger."""
    watcher = selectors.watcher_states([task])[task.pk]
    return render_to_string("admin/tasks_app/task/watcher.html", {"task": task, "watcher": watcher, "now": clock.now()},
                            request=request)


class TriggerListFilter(admin.SimpleListFilter):
    """RomM's grouping (API.md ``?group=trigger``): scheduled, manual, watcher, service."""

    title = "trigger"
    parameter_name = "trigger"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(TaskTrigger.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Task]) -> QuerySet[Task]:
        return selectors.filter_by_trigger(queryset, self.value()) if self.value() in TaskTrigger.values else queryset
