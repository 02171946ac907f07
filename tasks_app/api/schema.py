"""OpenAPI: the API key's two ways in (security schemes) and the paths as API.md writes them."""
from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
