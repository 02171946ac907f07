"""python manage.py import_supervisord FILE [--output FILE]

A supervisord configuration's [program:x] sections as services (definitions/imports/supervisord.py
says how each key is carried over).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks_app.definitions.imports.entries import Reading
from tasks_app.definitions.imports.supervisord import read_supervisord
from tasks_app.management.imports import ImportCommand
from tasks_app.models import DefinitionSource


class Command(ImportCommand):
    help = "Import a supervisord configuration's [program:x] sections as service tasks."
    source = DefinitionSource.SUPERVISORD
    entry_heading = "SECTION"
    file_help = "The configuration (supervisord.conf, or a file of its conf.d)."

    def read(self, path: Path, **options: Any) -> Reading:
        return read_supervisord(path)
