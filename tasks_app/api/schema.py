"""OpenAPI: the API key's two ways in (security schemes) and the paths as API.md writes them."""
from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.views import SpectacularRedocView
from rest_framework.request import Request
from rest_framework.response import Response


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "tasks_app.api.authentication.ApiKeyAuthentication"
    name = ["ApiKeyHeader", "BearerKey"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"ApiKeyHeader": []}, {"BearerKey": []}]  # either header, not both

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key (manage.py create_api_key)."},
            {"type": "http", "scheme": "bearer", "description": "The same API key, as Authorization: Bearer <key>."},
        ]


def paths_without_trailing_slash(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    """A drf-spectacular preprocessing hook: ``/api/tasks``, not ``/api/tasks/``.

    The router accepts both (``trailing_slash="/?"``); the contract and its clients write paths
    without the slash, so the schema does too.
    """
    return [(path.rstrip("/") or "/", *rest) for path, *rest in endpoints]


class RedocView(SpectacularRedocView):
    """Redoc, loading nothing from outside: a page without drf-spectacular's Google Fonts links
    (templates/api/redoc.html), and a Content-Security-Policy that keeps the browser on this
    server, since Redoc's script itself asks a CDN for its "API docs by Redocly" logo."""

    template_name = "api/redoc.html"
    #: Redoc starts from an inline script, styles inline and parses in a worker made from a blob.
    POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; "
              "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:")

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Content-Security-Policy"] = self.POLICY
        return response
