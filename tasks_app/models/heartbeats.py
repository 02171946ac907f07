"""Heartbeat: a Taskdeck process saying it is alive."""
from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class HeartbeatRole(models.TextChoices):
    """Which kind of Taskdeck process a heartbeat comes from."""

    WORKER = "worker", _("Worker")
    """A worker process of a cluster: it executes runs (busy or idle, it beats every 10 s)."""
    SCHEDULER = "scheduler", _("Scheduler")
    """The scheduler loop: ticks, reaping, held runs, retention."""
    WEB = "web", _("Web")
    """A web process; its beat is the health check's proof that the database takes writes."""
    SERVE = "serve", _("Serve")
    """``manage.py serve``, supervising its children; ``details`` counts their restarts."""
    SUPERVISOR = "supervisor", _("Supervisor")
    """The supervisor loop: it keeps service instances running; ``details`` counts what it runs."""


class Heartbeat(models.Model):
    """A process saying it is alive, for the health check and the dashboard."""

    role = models.CharField(max_length=20, choices=HeartbeatRole.choices)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    seen_at = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True, help_text=_("What the process reports: serve's restarts"))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["role", "host", "pid"], name="heartbeat_process")]

    def __str__(self) -> str:
        return f"{self.role} {self.host}:{self.pid}"
