"""What the three import commands share (``import_compose``, ``import_crontab``,
``import_supervisord``): read the file, build its definitions, write them (to the database through
``services.import_definitions``, or ``--output`` to a definitions file), print the table.

The table has a row per entry of the file: what became of it (created, updated, unchanged,
written, or skipped and why) and each thing of it that was not carried over, one per line; then
what of the file as a whole was not, and the tasks an earlier import wrote that are no longer in
the file (left as they are: the operator deletes them, in the admin).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tasks_app import selectors, services
from tasks_app.definitions.imports.entries import Reading, build_definitions, write_definitions_file
from tasks_app.exceptions import TaskdeckError
from tasks_app.management.errors import database_errors_in_one_line


class ImportCommand(BaseCommand):
    """An importer's command: ``read`` is its own, the rest is here."""

    #: The DefinitionSource its tasks get.
    source: str
    #: The first column's heading: what the file's entries are.
    entry_heading: str
    #: What the file is, for the help.
    file_help: str

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help=self.file_help)
        parser.add_argument("--output", metavar="FILE",
                            help="Write the tasks as TOML definitions to FILE (a new file, or one an earlier "
                                 "--output of this import wrote) instead of the database.")

    def read(self, path: Path, **options: Any) -> Reading:
        raise NotImplementedError

    def handle(self, *args: Any, file: str, output: str | None, **options: Any) -> None:
        try:
            reading = self.read(Path(file), **options)
            definitions = build_definitions(reading, source=self.source)
            if output:
                write_definitions_file(reading, Path(output), written_by=f"manage.py {self.command_name}")
                results = {definition["id"]: "written" for definition in definitions}
                gone: list[str] = []
            else:
                with database_errors_in_one_line():
                    results = services.import_definitions(definitions, source=self.source)
                    in_file = {entry.task_id for entry in reading.entries}
                    gone = [task_id for task_id in selectors.imported_task_ids(
                        self.source, compose_project=reading.compose_project) if task_id not in in_file]
        except TaskdeckError as error:
            raise CommandError(error.detail) from None
        self.print_table(reading, results)
        for note in reading.notes:
            self.stdout.write(note)
        if gone:
            self.stdout.write(f"Imported before and no longer in the file, left as they are (delete them in the "
                              f"admin if they are gone): {', '.join(sorted(gone))}")
        counts = {result: list(results.values()).count(result) for result in dict.fromkeys(results.values())}
        where = f"to {output}" if output else f"to the database (source {self.source})"
        summary = ", ".join(f"{count} {result}" for result, count in counts.items()) or "none"
        skipped = len(reading.entries) - len(reading.imported)
        self.stdout.write(f"{len(results)} task(s) {where}: {summary}" + (f"; {skipped} skipped." if skipped else "."))

    @property
    def command_name(self) -> str:
        return self.__module__.rpartition(".")[2]

    def print_table(self, reading: Reading, results: dict[str, str]) -> None:
        rows = [(self.entry_heading, "TASK", "RESULT", "NOT CARRIED OVER")]
        for entry in reading.entries:
            result = "skipped" if entry.skipped else results[entry.task_id]
            task = "-" if entry.skipped else entry.task_id
            lost = [f"skipped: {entry.skipped}"] if entry.skipped else entry.lost or ["-"]
            rows.append((entry.name, task, result, lost[0]))
            rows.extend(("", "", "", item) for item in lost[1:])
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        for row in rows:
            self.stdout.write("  ".join([*(value.ljust(width) for value, width in zip(row, widths)), row[3]]).rstrip())
