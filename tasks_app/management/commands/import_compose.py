"""python manage.py import_compose FILE [--project NAME] [--service S ...] [--output FILE]

A docker compose file's services as service tasks (definitions/imports/compose.py says how each
is carried over); importing needs no Docker, running the tasks does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from tasks_app.definitions.imports.compose import read_compose
from tasks_app.definitions.imports.entries import Reading
from tasks_app.management.imports import ImportCommand
from tasks_app.models import DefinitionSource


class Command(ImportCommand):
    help = ("Import a docker compose file's services as service tasks, each instance run by "
            "`docker compose run` (Docker is needed to run them, not to import them).")
    source = DefinitionSource.COMPOSE
    entry_heading = "SERVICE"
    file_help = "The compose file (docker-compose.yml, compose.yaml)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--project", metavar="NAME",
                            help="The compose project (default: the file's name:, else its folder's name).")
        parser.add_argument("--service", action="append", default=[], metavar="S",
                            help="Import only this service (repeatable); the others are skipped.")

    def read(self, path: Path, *, project: str | None, service: list[str], **options: Any) -> Reading:
        return read_compose(path, project=project, services=service)
