"""Scopes: every route names the scope it needs; callers get theirs from a key or from Django."""
from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from tasks_app.models import SCOPE_GRANTS, ApiKey, Scope

#: The Django permission that gives a staff user each scope (with what the scope implies).
PERMISSION_SCOPES = (
    ("tasks_app.view_task", Scope.READ),
    ("tasks_app.run_task", Scope.RUN),
    ("tasks_app.manage_task", Scope.MANAGE),
)
ALL_SCOPES = SCOPE_GRANTS[Scope.MANAGE]


def caller_scopes(request: Request) -> frozenset[str]:
    """A key's scopes; a superuser's all; a staff user's from Django permissions; anyone else's none."""
    return scopes_of(user=request.user, key=request.auth if isinstance(request.auth, ApiKey) else None)


def scopes_of(*, user: Any, key: ApiKey | None) -> frozenset[str]:
    """What a caller may do, however it came (HTTP request or WebSocket): see caller_scopes."""
    if key is not None:
        return key.granted_scopes
    if not user or not user.is_authenticated or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return ALL_SCOPES
    if not user.is_staff:
        return frozenset()
    granted: set[str] = set()
    for permission, scope in PERMISSION_SCOPES:
        if user.has_perm(permission):
            granted |= SCOPE_GRANTS[scope]
    return frozenset(granted)


class HasScope(BasePermission):
    """The view's ``required_scopes[action]`` (or ``required_scope``) must be among the caller's."""

    def has_permission(self, request: Request, view: Any) -> bool:
        required = self.scope_for(view)
        if required is None:
            return True
        if not request.user or not request.user.is_authenticated:
            return False  # DRF turns this into 401 (no caller) or 403
        allowed = required in caller_scopes(request)
        if not allowed:
            self.message = f"This needs the {required} scope."
        return allowed

    def scope_for(self, view: Any) -> str | None:
        return required_scope(view)


class CanRead(HasScope):
    """tasks:read, for views from other libraries: the OpenAPI schema and its two viewers."""

    def scope_for(self, view: Any) -> str | None:
        return Scope.READ


def required_scope(view: Any) -> str | None:
    scopes = getattr(view, "required_scopes", None)
    if scopes is not None:
        return scopes.get(getattr(view, "action", None) or request_method_action(view))
    return getattr(view, "required_scope", None)


def request_method_action(view: Any) -> str:
    return view.request.method.lower() if getattr(view, "request", None) else ""
