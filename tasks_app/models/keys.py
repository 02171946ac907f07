"""ApiKey and the scopes a key grants."""
from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _


class Scope(models.TextChoices):
    """What an API caller may do; each scope implies the ones below it."""

    READ = "tasks:read", _("Read tasks, runs, activity, logs and streams")
    """GET routes and the live streams."""
    RUN = "tasks:run", _("Trigger and cancel (implies read)")
    """Trigger and cancel runs, and everything read allows."""
    MANAGE = "tasks:manage", _("Enable, disable, reschedule, delete runs (implies run and read)")
    """Change a task's operator settings and delete runs, and everything run allows."""


#: Every scope a scope grants, itself included.
SCOPE_GRANTS: dict[str, frozenset[str]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.RUN: frozenset({Scope.READ, Scope.RUN}),
    Scope.MANAGE: frozenset({Scope.READ, Scope.RUN, Scope.MANAGE}),
}


class ApiKeyQuerySet(models.QuerySet):
    def usable(self, now: Any) -> ApiKeyQuerySet:
        """Not revoked and not expired."""
        return self.filter(revoked_at__isnull=True).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class ApiKey(models.Model):
    """An API key: only its SHA-256 is stored; the key itself is shown once, when created.

    Keys are 256 random bits, so a fast hash is enough (no guessing is feasible) and lets a
    request find its key by one indexed lookup.
    """

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=12, help_text=_("The key's first characters, to recognise it"))
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    owner = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="api_keys")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def granted_scopes(self) -> frozenset[str]:
        return frozenset().union(*(SCOPE_GRANTS.get(scope, frozenset()) for scope in self.scopes))
