"""Page/limit paging and query-parameter checking shared by every list route."""
from __future__ import annotations

import math
from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.request import Request

from tasks_app.api.problems import validation_errors
from tasks_app import text
from tasks_app.exceptions import InvalidQuery, InvalidText


def parse_query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """Checked query parameters; a bad one is a 400 naming it (location ``query.<name>``)."""
    for name, values in request.query_params.lists():
        for value in values:
            bad = text.first_unstorable(value, location=f"query.{text.storable(name)}")
            if bad is not None:
                raise InvalidText(f"Invalid text in {bad.location}.",
                                  errors=[{"location": bad.location, "message": bad.message}])
    serializer = serializer_class(data=request.query_params)
    if not serializer.is_valid():
        errors = validation_errors(serializer.errors, prefix="query")
        for error in errors:
            name = error["location"].removeprefix("query.")
            error["value"] = request.query_params.get(name)
        raise InvalidQuery(f"Invalid query parameter: {errors[0]['location'].removeprefix('query.')}.", errors=errors)
    return serializer.validated_data


def paginate(queryset: QuerySet, *, page: int, limit: int) -> tuple[list[Any], dict[str, int]]:
    """One page of ``queryset``; a page past the end is empty, with the requested page echoed."""
    total = queryset.count()
    offset = (page - 1) * limit
    items = list(queryset[offset: offset + limit]) if offset < total else []
    return items, pagination(page=page, limit=limit, total=total)


def pagination(*, page: int, limit: int, total: int) -> dict[str, int]:
    """The ``pagination`` object of every list response."""
    return {"page": page, "limit": limit, "total": total, "total_pages": math.ceil(total / limit)}
