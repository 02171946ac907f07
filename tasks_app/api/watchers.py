"""The watcher side of the Task object (API.md "Watchers"): a watcher task's ``watcher`` object,
its settings and its state as the supervisor that owns it last wrote it. Output only."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from tasks_app.definitions.watcher import EVENTS
from tasks_app.models import Task, TaskKind, WatcherState


class PathStateSerializer(serializers.Serializer):
    """One watched path, as its owner watches it."""

    path = serializers.CharField(help_text="As the watcher's paths give it.")
    mode = serializers.ChoiceField(choices=["inotify", "polling", ""], help_text=(
        "inotify, or polling where the file system sends no events (network mounts) or inotify is out of "
        "resources; empty while its watch is being set up, or while it cannot be watched."))
    error = serializers.CharField(allow_blank=True, help_text="Why it cannot be watched (it is tried again), or why "
                                                              "it is polled rather than watched by inotify.")


class WatcherSerializer(serializers.Serializer):
    """A watcher task's settings and state (API.md "Watchers"), null for other kinds."""

    paths = serializers.ListField(child=serializers.CharField(), help_text="Files or folders watched; a relative "
                                                                           "one is read from the supervisor's folder.")
    recursive = serializers.BooleanField()
    patterns = serializers.ListField(child=serializers.CharField(), help_text=(
        "Shell-style patterns a changed path must match (empty: every path). Without a slash, a pattern is matched "
        "against each name from the watched folder down (the file's and its folders'); with one, against the path "
        "below the watched folder."))
    ignore_patterns = serializers.ListField(child=serializers.CharField(), help_text="Matched the same way; they win.")
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENTS), help_text=(
        "The kinds of change that count. A move arrives as its old path deleted and its new path created."))
    quiet_delay = serializers.FloatField(min_value=0, help_text="Seconds without a change before the target is "
                                                                "triggered.")
    target = serializers.CharField(help_text="The id of the task it triggers.")
    target_parameters = serializers.DictField(child=serializers.JSONField(), help_text="The target's parameters.")
    state = serializers.ChoiceField(choices=WatcherState.choices)
    last_change_at = serializers.DateTimeField(allow_null=True)
    last_triggered_at = serializers.DateTimeField(allow_null=True)
    pending_changes = serializers.IntegerField(min_value=0, help_text=(
        "Changed paths seen since its last trigger: waiting for the quiet delay, or for the target to take them."))
    error = serializers.CharField(allow_blank=True, help_text="Why the state is error.")
    path_states = PathStateSerializer(many=True, help_text="Each path as its owner watches it.")
    last_run_id = serializers.UUIDField(allow_null=True, help_text="The target's run it triggered last.")


def watcher_object(task: Task, *, known: Mapping[str, dict[str, Any]] | None) -> dict[str, Any] | None:
    """A watcher task's ``watcher`` object, from ``known`` (``selectors.watcher_states`` of a page
    of tasks) or read now; null for other kinds."""
    from tasks_app import selectors

    if task.kind != TaskKind.WATCHER or task.watch is None:
        return None
    if known is None or task.pk not in known:
        known = selectors.watcher_states([task])
    return WatcherSerializer(known[task.pk]).data
