"""python manage.py import_crontab FILE [--system] [--timezone ZONE] [--output FILE]

A crontab's lines as command tasks with their cron strings (definitions/imports/crontab.py says
how each is carried over).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from tasks_app.definitions.imports.crontab import read_crontab
from tasks_app.definitions.imports.entries import Reading
from tasks_app.management.imports import ImportCommand
from tasks_app.models import DefinitionSource


class Command(ImportCommand):
    help = "Import a crontab's lines as command tasks with their cron strings."
    source = DefinitionSource.CRONTAB
    entry_heading = "LINE"
    file_help = "The crontab (a user's, as `crontab -l` prints it, or a system one)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--system", action="store_true", default=None,
                            help="Its lines have a user column after the schedule, as /etc/crontab's "
                                 "(the default for /etc/crontab and /etc/cron.d/*).")
        parser.add_argument("--timezone", metavar="ZONE",
                            help="The zone cron ran its schedules in, where no CRON_TZ line says "
                                 "(default TASKDECK_DEFAULT_TIMEZONE).")

    def read(self, path: Path, *, system: bool | None, timezone: str | None, **options: Any) -> Reading:
        return read_crontab(path, system=system, timezone=timezone)
