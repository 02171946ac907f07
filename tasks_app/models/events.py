"""Event: the outbox of live events that SSE and WebSocket clients read."""
from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from tasks_app.fields import StorableJSONField


class EventName(models.TextChoices):
    QUEUED = "task:queued", _("Queued")
    """A run was created: handed to the queue, or held for a slot or its time."""
    STARTED = "task:started", _("Started")
    """A worker claimed a run and began it."""
    PROGRESS = "task:progress", _("Progress")
    """A running run reported progress, counts or a message (coalesced)."""
    COMPLETED = "task:completed", _("Completed")
    """A run ended completed."""
    ERROR = "task:error", _("Error")
    """A run ended failed (any failing end reason)."""
    CANCELLED = "task:cancelled", _("Cancelled")
    """A run ended cancelled or terminated."""
    SKIPPED = "task:skipped", _("Skipped")
    """A run ended skipped, queue_full or missed without executing."""
    UPDATED = "task:updated", _("Definition updated")
    """A task's definition or operator settings changed."""
    SERVICE_UPDATED = "service:updated", _("Service updated")
    """A service instance changed state (started, healthy, exited, backoff, fatal, stopped), or an
    operator started, stopped or restarted the service."""
    WATCHER_UPDATED = "watcher:updated", _("Watcher updated")
    """A file watcher changed state (starting, watching, error, stopped), saw changes (its pending
    count, throttled), triggered its target, or had a trigger refused."""
    LOG = "run:log", _("Output logged")
    """Output of a run landed in its log (throttled): it wakes the run's log streams
    (``GET /api/runs/{id}/log/stream``); /api/events and the WebSocket do not send it."""


#: Events only Taskdeck's own streams read: the public live streams leave them out.
INTERNAL_EVENTS = frozenset({EventName.LOG})


class Event(models.Model):
    """Outbox of live events: the SSE id is the primary key; pruned after a retention window.

    task_id and run_id are plain values, not foreign keys, so an event outlives nothing it names
    and deleting a run removes its events explicitly.
    """

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=30, choices=EventName.choices)
    task_id = models.CharField(max_length=200)
    run_id = models.UUIDField(null=True, blank=True)
    data = StorableJSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["run_id"], name="event_run"),
            models.Index(fields=["created_at"], name="event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.name} {self.task_id}"
