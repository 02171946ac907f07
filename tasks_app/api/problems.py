"""RFC 9457 problem documents: the one place API errors are rendered.

``exception_handler`` (DRF's EXCEPTION_HANDLER) renders Taskdeck's exceptions, DRF's own
(validation, authentication, permission, 404, 405, throttling ...) and anything unexpected (500,
logged with its traceback, never sent). ``api_not_found``/``api_server_error`` do the same for
errors Django raises before DRF is reached. Each kind has a stable ``type``,
``/api/problems/<slug>``, which serves a short explanation.
"""
from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape
from rest_framework import exceptions as drf
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from tasks_app.exceptions import DatabaseUnavailable, RequestTooLarge, TaskdeckError

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"
#: Seconds a client is told to wait (Retry-After) when the database refused its request.
DATABASE_RETRY_AFTER = 5

#: slug -> (status, title, explanation) for the problems DRF and Django raise.
FRAMEWORK_PROBLEMS: dict[str, tuple[int, str, str]] = {
    "invalid-request": (400, "Invalid request", "The request body failed validation; errors[] names each bad field."),
    "malformed-request": (400, "Malformed request", "The request body could not be parsed (send JSON)."),
    "not-authenticated": (401, "Not authenticated", "Send an API key (X-API-Key or Authorization: Bearer) or log in."),
    "authentication-failed": (401, "Authentication failed", "The API key is unknown, revoked or expired."),
    "permission-denied": (403, "Permission denied", "The caller lacks the scope this route needs (tasks:read, tasks:run, tasks:manage)."),
    "not-found": (404, "Not found", "No such route or resource."),
    "method-not-allowed": (405, "Method not allowed", "This route does not take that HTTP method."),
    "not-acceptable": (406, "Not acceptable", "The Accept header asks for a format this route cannot produce."),
    "unsupported-media-type": (415, "Unsupported media type", "Send the body as application/json."),
    "throttled": (429, "Too many requests", "Slow down; retry after the time given."),
    "server-error": (500, "Server error", "Taskdeck failed unexpectedly; the error was logged."),
}

_DRF_SLUGS: list[tuple[type[drf.APIException], str]] = [
    (drf.ValidationError, "invalid-request"),
    (drf.ParseError, "malformed-request"),
    (drf.NotAuthenticated, "not-authenticated"),
    (drf.AuthenticationFailed, "authentication-failed"),
    (drf.PermissionDenied, "permission-denied"),
    (drf.NotFound, "not-found"),
    (drf.MethodNotAllowed, "method-not-allowed"),
    (drf.NotAcceptable, "not-acceptable"),
    (drf.UnsupportedMediaType, "unsupported-media-type"),
    (drf.Throttled, "throttled"),
]


def all_problems() -> dict[str, tuple[int, str, str]]:
    """Every problem type Taskdeck's API can answer with."""
    problems = dict(FRAMEWORK_PROBLEMS)
    pending = list(TaskdeckError.__subclasses__())
    while pending:
        kind = pending.pop()
        pending.extend(kind.__subclasses__())
        if 400 <= kind.status < 600 and kind.slug not in problems:
            problems[kind.slug] = (kind.status, kind.title, (kind.__doc__ or kind.title).strip().splitlines()[0])
    return problems


def problem(status: int, slug: str, title: str, detail: str, instance: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": f"/api/problems/{slug}", "title": title, "status": status, "detail": detail, "instance": instance}
    if errors:
        body["errors"] = errors
    return body


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    request = context.get("request")
    instance = request.path if request is not None else ""
    headers: dict[str, str] = {}
    if isinstance(exc, RequestDataTooBig):  # Django's own cap (DATA_UPLOAD_MAX_MEMORY_SIZE), met first
        exc = RequestTooLarge(f"The body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes.")
    if isinstance(exc, TaskdeckError):
        body = problem(exc.status, exc.slug, exc.title, exc.detail, instance, exc.errors)
    elif isinstance(exc, Http404):
        body = problem(404, "not-found", "Not found", "No such resource.", instance)
    elif isinstance(exc, drf.APIException):
        slug = next((slug for kind, slug in _DRF_SLUGS if isinstance(exc, kind)), "invalid-request")
        status, title, _ = FRAMEWORK_PROBLEMS[slug]
        status = exc.status_code
        errors = validation_errors(exc.detail, prefix="body") if isinstance(exc, drf.ValidationError) else None
        detail = "Some fields are invalid." if errors else _text(exc.detail)
        body = problem(status, slug, title, detail, instance, errors)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
    elif isinstance(exc, OperationalError):  # a full disk, a read-only file, a lock, a lost server
        logger.warning("The database refused %s: %s", instance, exc)
        unavailable = DatabaseUnavailable("The database cannot serve this request right now; nothing was changed.")
        body = problem(unavailable.status, unavailable.slug, unavailable.title, unavailable.detail, instance)
        headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
    else:
        logger.exception("Unexpected error serving %s", instance)
        body = problem(500, "server-error", "Server error", "Taskdeck failed unexpectedly; the error was logged.", instance)
    if request is not None:  # never the browsable API's HTML under a problem+json label
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
    return Response(body, status=body["status"], headers=headers, content_type=CONTENT_TYPE)


def validation_errors(detail: Any, *, prefix: str) -> list[dict[str, Any]]:
    """DRF's nested error detail as a flat list of {location, message}."""
    if isinstance(detail, dict):
        return [error for key, value in detail.items()
                for error in validation_errors(value, prefix=prefix if key == "non_field_errors" else f"{prefix}.{key}")]
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"location": prefix, "message": str(item)} for item in detail]
        return [error for index, item in enumerate(detail) for error in validation_errors(item, prefix=f"{prefix}[{index}]")]
    return [{"location": prefix, "message": str(detail)}]


def _text(detail: Any) -> str:
    if isinstance(detail, (list, dict)):
        return "; ".join(error["message"] for error in validation_errors(detail, prefix=""))
    return str(detail)


def api_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    body = problem(404, "not-found", "Not found", f"No route {request.path}.", request.path)
    return JsonResponse(body, status=404, content_type=CONTENT_TYPE)


def api_server_error(request: HttpRequest) -> HttpResponse:
    body = problem(500, "server-error", "Server error", "Taskdeck failed unexpectedly; the error was logged.", request.path)
    return JsonResponse(body, status=500, content_type=CONTENT_TYPE)


def problem_page(request: HttpRequest, slug: str) -> HttpResponse:
    """/api/problems/<slug>: what a problem type means, for humans."""
    problems = all_problems()
    if slug not in problems:
        return api_not_found(request)
    status, title, explanation = problems[slug]
    html = (f"<!doctype html><title>{escape(title)}</title><h1>{escape(title)}</h1>"
            f"<p>HTTP {status}. {escape(explanation)}</p><p><a href='/api/problems/'>All problem types</a></p>")
    return HttpResponse(html)


def problem_index(request: HttpRequest) -> HttpResponse:
    items = "".join(f"<li><a href='/api/problems/{escape(slug)}'>{escape(slug)}</a>: {escape(title)} ({status})</li>"
                    for slug, (status, title, _) in sorted(all_problems().items()))
    return HttpResponse(f"<!doctype html><title>Problem types</title><h1>Problem types</h1><ul>{items}</ul>")
