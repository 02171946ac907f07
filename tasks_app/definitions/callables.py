"""The function a python task names by dotted path: checked when its definition loads, called by
the worker that runs it (execution/python.py)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string


def resolve_callable(path: str) -> Callable[..., Any]:
    """The callable at ``path``, or ImportError saying why not."""
    try:
        function = import_string(path)
    except ImportError as error:
        raise ImportError(f"cannot import {path!r}: {error}") from None
    if not callable(function):
        raise ImportError(f"{path!r} is not callable")
    return function
