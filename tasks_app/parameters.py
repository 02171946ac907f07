"""Task parameters: the declared spec (checked when a definition loads) and the values of a run.

A spec item: ``{"key", "type": string|number|boolean, "kind": option|env|arg|flag, "required",
"default", "choices", "allow_custom", "description"}``. ``kind`` only matters to process tasks,
which render a value into argv or the environment by it.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from tasks_app import text
from tasks_app.exceptions import DefinitionError, InvalidParameters

TYPES = ("string", "number", "boolean")
KINDS = ("option", "env", "arg", "flag")
KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
#: A command task's option or flag may be keyed by its token itself (``-v``, ``--max-depth``: API.md).
TOKEN_PATTERN = re.compile(r"^--?[A-Za-z0-9][A-Za-z0-9_-]*$")
#: The longest string value a parameter takes (characters): a watcher's changed_paths fit.
MAX_VALUE_LENGTH = 65536
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def normalize_spec(task_id: str, raw: Any, *, tokens: bool = False) -> list[dict[str, Any]]:
    """Check a declared parameter list and fill in every default, so reads never guess.

    ``tokens``: keys may be command-line tokens (``--max-depth``), for command tasks, whose
    option and flag parameters render as that token (API.md); never an ``env`` parameter's key.
    """
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        raise DefinitionError(task_id, "parameters", "must be a list of tables")
    spec: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"parameters[{index}]"
        if not isinstance(item, Mapping):
            raise DefinitionError(task_id, where, "must be a table with at least a key")
        unknown = set(item) - {"key", "type", "kind", "required", "default", "choices", "allow_custom", "description"}
        if unknown:
            raise DefinitionError(task_id, f"{where}.{sorted(unknown)[0]}", "unknown field")
        key = item.get("key")
        token = tokens and isinstance(key, str) and TOKEN_PATTERN.match(key) is not None
        if not isinstance(key, str) or not (token or KEY_PATTERN.match(key)):
            raise DefinitionError(task_id, f"{where}.key", "must be a name of letters, digits, _ or -")
        if key in seen:
            raise DefinitionError(task_id, f"{where}.key", f"duplicate parameter {key!r}")
        seen.add(key)
        type_ = item.get("type", "string")
        if type_ not in TYPES:
            raise DefinitionError(task_id, f"{where}.type", f"must be one of {', '.join(TYPES)}")
        kind = item.get("kind", "flag" if type_ == "boolean" else "option")
        if kind not in KINDS:
            raise DefinitionError(task_id, f"{where}.kind", f"must be one of {', '.join(KINDS)}")
        if token and kind == "env":
            raise DefinitionError(task_id, f"{where}.key", "an env parameter's key is a variable name, not an option")
        choices = item.get("choices", [])
        if not isinstance(choices, list):
            raise DefinitionError(task_id, f"{where}.choices", "must be a list")
        entry = {
            "key": key,
            "type": type_,
            "kind": kind,
            "required": bool(item.get("required", False)),
            "default": None,
            "choices": [],
            "allow_custom": bool(item.get("allow_custom", False)),
            "description": str(item.get("description", "")),
        }
        try:
            entry["choices"] = [_coerce(entry, choice) for choice in choices]
            default = item.get("default", _empty(type_))
            entry["default"] = _coerce(entry, default) if default is not None else None
        except ValueError as error:
            raise DefinitionError(task_id, f"{where}.default", str(error)) from None
        spec.append(entry)
    return spec


def resolve(spec: list[dict[str, Any]], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The values a run gets: given ones checked and typed, the rest defaulted; all errors at once."""
    given = dict(given or {})
    errors: list[dict[str, Any]] = []
    values: dict[str, Any] = {}
    known = {item["key"] for item in spec}
    for key in sorted(set(given) - known, key=str):
        errors.append(_error(key, "Unknown parameter.", given[key]))
    for item in spec:
        key = item["key"]
        if key not in given or given[key] is None or given[key] == "":
            if item["required"]:
                errors.append(_error(key, "This parameter is required.", given.get(key)))
            values[key] = item["default"]
            continue
        bad = text.first_unstorable(given[key], location=key)
        if bad is not None:
            errors.append(_error(key, bad.message, given[key]))
            continue
        try:
            value = _coerce(item, given[key])
        except ValueError as error:
            errors.append(_error(key, str(error), given[key]))
            continue
        if item["choices"] and not item["allow_custom"] and value not in item["choices"]:
            allowed = ", ".join(str(choice) for choice in item["choices"])
            errors.append(_error(key, f"Must be one of: {allowed}.", given[key]))
            continue
        values[key] = value
    if errors:
        keys = ", ".join(error["location"].rsplit(".", 1)[-1] for error in errors)
        raise InvalidParameters(f"Invalid parameters: {keys}.", errors=errors)
    return values


def _coerce(item: Mapping[str, Any], value: Any) -> Any:
    type_ = item["type"]
    if type_ == "string":
        if isinstance(value, (dict, list, bool)):
            raise ValueError("Must be a string.")
        if len(str(value)) > MAX_VALUE_LENGTH:
            raise ValueError(f"At most {MAX_VALUE_LENGTH:,} characters.")
        return str(value)
    if type_ == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("Must be a number.")
        number = _parse_number(value) if isinstance(value, str) else value
        if not math.isfinite(number):
            raise ValueError("Must be a finite number.")
        return number
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("Must be true or false.")


def _parse_number(text: str) -> int | float:
    """Command-line and form values arrive as text: "3" is 3, "2.5" is 2.5."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError("Must be a number.") from None


def _empty(type_: str) -> Any:
    return {"string": "", "number": None, "boolean": False}[type_]


def _error(key: Any, message: str, value: Any) -> dict[str, Any]:
    """One error of ``InvalidParameters``, shown back as given (made storable: it is rendered)."""
    if isinstance(value, str) and len(value) > 200:
        value = value[:200] + "…"
    return {"location": f"body.parameters.{text.storable(str(key))}", "message": message,
            "value": text.storable_data(value)}
