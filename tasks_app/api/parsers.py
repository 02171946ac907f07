"""Request bodies: one JSON object, bounded in size and nesting, holding only storable text.

Every body of the contract is a JSON object (an empty body reads as ``{}``). What a body may
cost is bounded here, before any view sees it: at most ``MAX_BODY_BYTES`` (413), at most
``text.MAX_JSON_DEPTH`` levels of nesting (400), and no string or key Taskdeck could not store
or show again (400 naming it, ``text.first_unstorable``).
"""
from __future__ import annotations

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from tasks_app import text
from tasks_app.exceptions import InvalidText, RequestTooLarge

#: The largest request body the API reads (bytes).
MAX_BODY_BYTES = 1024 * 1024


class JSONObjectParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise RequestTooLarge(f"The body is {int(declared):,} bytes; the API reads at most {MAX_BODY_BYTES:,}.")
        raw = stream.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            raise RequestTooLarge(f"The body is over {MAX_BODY_BYTES:,} bytes, the most the API reads.")
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
        except UnicodeDecodeError:
            raise ParseError("The body is not UTF-8 text.") from None
        except RecursionError:
            raise ParseError(f"JSON nested more than {text.MAX_JSON_DEPTH} levels deep.") from None
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from None
        if not isinstance(data, dict):
            raise ParseError(f"The body must be a JSON object, not {type(data).__name__ if data is not None else 'null'}.")
        bad = text.first_unstorable(data, location="body")
        if bad is not None and bad.too_deep:
            raise ParseError(f"JSON nested more than {text.MAX_JSON_DEPTH} levels deep (at {bad.location}).")
        if bad is not None:
            raise InvalidText(f"Invalid text in {bad.location}.", errors=[{"location": bad.location, "message": bad.message}])
        return data


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (and PostgreSQL's jsonb refuses them)."""
    raise ValueError(f"{name} is not a JSON value")
