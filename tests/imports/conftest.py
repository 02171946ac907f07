"""What the importers' tests share: the sample files, and a command's printed report."""
from __future__ import annotations

import io
from pathlib import Path

from django.core.management import call_command

#: The sample files the importers read (a compose file, crontabs, a supervisord configuration).
FILES = Path(__file__).resolve().parent / "files"


def call(*args: str) -> str:
    """A command's stdout (its table and summary)."""
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()
