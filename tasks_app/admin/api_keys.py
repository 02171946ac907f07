"""API keys: created here (the key is shown once, on the page that follows, and never stored),
listed with their scopes, expiry and last use, and revoked; never edited."""
from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString

from tasks_app import clock
from tasks_app.admin import display
from tasks_app.admin.forms import ApiKeyCreationForm
from tasks_app.services import keys
from tasks_app.exceptions import TaskdeckError
from tasks_app.models import ApiKey


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

    class Media:
        css = {"all": ("taskdeck/admin.css",)}

    @admin.display(description="State")
    def state(self, key: ApiKey) -> SafeString:
        if key.revoked_at:
            return display.status_badge("failed", "revoked")
        if key.expires_at and key.expires_at <= clock.now():
            return display.status_badge("cancelled", "expired")
        return display.status_badge("completed", "active")

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            keys.revoke_key(key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)
