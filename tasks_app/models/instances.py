"""ServiceInstance: one of a service's ``instances``, as its owner (a supervisor) last wrote it,
and what operators asked of it."""
from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class InstanceState(models.TextChoices):
    """Where one service instance is (API.md "Services")."""

    STARTING = "starting", _("Starting")
    """Its process started, and has not been up ``healthy_after`` seconds (or passed its health check) yet."""
    RUNNING = "running", _("Running")
    """Up and healthy: its failure streak and backoff are reset."""
    BACKOFF = "backoff", _("Backoff")
    """Exited; it starts again at ``next_start_at``."""
    FATAL = "fatal", _("Fatal")
    """Exited ``start_retries`` times in a row before it was healthy: no more restarts until an operator starts it."""
    STOPPED = "stopped", _("Stopped")
    """Not running, and not to be started: stopped by an operator, never started (``autostart`` false), or exited
    with a restart policy that keeps it down."""


class ServiceInstance(models.Model):
    """One instance slot of a service task. Its owner writes what happens to it (state, pid, run,
    restarts); operators write what they want of it (``wanted``, and a start or restart request)."""

    task = models.ForeignKey("tasks_app.Task", on_delete=models.CASCADE, related_name="instances")
    index = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=10, choices=InstanceState.choices, default=InstanceState.STOPPED)
    wanted = models.BooleanField(help_text=_("Whether it should run: autostart at first, then the operator's "
                                             "start or stop, which holds across restarts of Taskdeck"))
    start_requested = models.PositiveIntegerField(default=0, help_text=_(
        "Counts operators' starts and restarts; the owner acts on each once (a restart stops a running process first)"))
    restart_requested = models.PositiveIntegerField(default=0)
    run = models.ForeignKey("tasks_app.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    restarts = models.PositiveIntegerField(default=0, help_text=_("Starts after the first since Taskdeck started it"))
    last_exit_code = models.IntegerField(null=True, blank=True)
    last_exit_signal = models.CharField(max_length=16, null=True, blank=True)
    next_start_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "index"], name="service_instance")]
        ordering = ["task", "index"]

    def __str__(self) -> str:
        return f"{self.task_id}[{self.index}] {self.state}"
