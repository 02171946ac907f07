"""Form fields of the admin's own: JSON lists and tables in one-line boxes, yes or no as a select,
environment variables as NAME=value lines."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django import forms


class ListJSONField(forms.JSONField):
    """A JSON list in a one-line box (argv, exit_codes); empty when there is none, not "null"."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 80}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


class TableJSONField(ListJSONField):
    """A JSON object in a one-line box (a service's health_check); empty when there is none."""


class YesNoField(forms.TypedChoiceField):
    """Yes or no as a select: unlike a checkbox, a form posted without it leaves it out (None),
    so the setting keeps its default (a service's autostart)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=[("True", "Yes"), ("False", "No")], coerce=lambda value: value == "True",
                         empty_value=None, **kwargs)


class EnvField(forms.CharField):
    """Environment variables as ``NAME=value`` lines (blank lines and ``#`` comments skipped) or a
    JSON object; whether each is acceptable is the process check's to say."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 80})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strip=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return "\n".join(f"{name}={item}" for name, item in value.items())
        return value

    def to_python(self, value: Any) -> dict[str, Any]:
        if isinstance(value, Mapping):
            return dict(value)
        text = super().to_python(value)
        if text.strip().startswith("{"):
            try:
                parsed = json.loads(text)
            except ValueError as error:
                raise forms.ValidationError(f"Not a JSON object: {error}.") from None
            if not isinstance(parsed, dict):
                raise forms.ValidationError("Give NAME=value lines or a JSON object.")
            return parsed
        values: dict[str, Any] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, equals, item = line.partition("=")
            if not equals:
                raise forms.ValidationError(f"Line {number} is not NAME=value.")
            values[name.strip()] = item
        return values
