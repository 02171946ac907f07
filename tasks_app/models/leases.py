"""Lease: who runs, right now, something that must run exactly once across hosts (a service
instance, a file watcher)."""
from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Lease(models.Model):
    """Held by one supervisor process (``owner``) until ``expires_at``; it renews it while it
    runs the thing named. Another takes it over only once it has expired (services/leases.py)."""

    name = models.CharField(max_length=300, primary_key=True,
                            help_text=_("What is owned: service:<task id>:<instance index>, watcher:<task id>"))
    owner = models.CharField(max_length=120, help_text=_("The supervisor holding it: host, pid and a start token"))
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    acquired_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.host}:{self.pid})"
