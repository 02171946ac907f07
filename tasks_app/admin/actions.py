"""What every admin action shares: one message per object acted on, and live fragments."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, JsonResponse

from tasks_app.exceptions import TaskdeckError


def apply_each(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    objects: Iterable[Any],
    operation: Callable[[Any], Any],
    describe: Callable[[Any, Any], str],
) -> None:
    """One service call per selected object, each outcome reported as its own admin message."""
    for obj in objects:
        try:
            result = operation(obj)
        except TaskdeckError as error:
            model_admin.message_user(request, error.detail, messages.WARNING)
        else:
            model_admin.message_user(request, describe(obj, result), messages.SUCCESS)


def live_fragments(fragments: dict[str, str], **state: Any) -> JsonResponse:
    """The answer of a page's live endpoint: server-rendered (escaped) HTML for each
    ``data-live-fragment`` element of the page, plus plain values the script reads
    (static/taskdeck/live.js)."""
    response = JsonResponse({"fragments": fragments, **state})
    response["Cache-Control"] = "no-store"
    return response
