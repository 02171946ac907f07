"""Model fields of Taskdeck's own."""
from __future__ import annotations

from typing import Any

from django.db import models

from tasks_app.text import UnstorableTextDecoder


class StorableJSONField(models.JSONField):
    """A JSONField whose values read back as renderable text (``text.UnstorableTextDecoder``).

    Only reading changes, so migrations see a plain JSONField: declaring the decoder on the field
    itself would make SQLite rebuild each table that has one (and drop the run table's triggers).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("decoder", UnstorableTextDecoder)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        name, _path, args, kwargs = super().deconstruct()
        kwargs.pop("decoder", None)
        return name, "django.db.models.JSONField", args, kwargs
