"""python manage.py tasks list | run | cancel | show | sync"""
from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import OperationalError

from tasks_app import selectors, services
from tasks_app.exceptions import DefinitionError, TaskdeckError
from tasks_app.models import Run, RunStatus, RunTrigger, Task
from tasks_app.registry import all_definitions

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "List, run, cancel and inspect Taskdeck tasks."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{list,run,cancel,show,sync}")
        sub.add_parser("list", help="List tasks with their status.")
        run = sub.add_parser("run", help="Trigger a task; prints the run id.")
        run.add_argument("task_id")
        run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="A parameter (repeatable).")
        run.add_argument("--dry-run", action="store_true", help="Ask the task to change nothing.")
        run.add_argument("--force", action="store_true", help="Run even if the overlap policy would refuse.")
        run.add_argument("--wait", action="store_true", help="Follow progress; exit 1 unless the run completes.")
        cancel = sub.add_parser("cancel", help="Cancel a run.")
        cancel.add_argument("run_id")
        show = sub.add_parser("show", help="Show a run.")
        show.add_argument("run_id")
        sub.add_parser("sync", help="Load task definitions (code and definitions file) into the database.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            getattr(self, f"do_{action}")(**options)
        except (TaskdeckError, DefinitionError) as error:
            raise CommandError(error.detail) from None
        except OperationalError as error:
            raise CommandError(f"Database error: {error}") from None

    # -- subcommands --

    def do_list(self, **options: Any) -> None:
        tasks = list(Task.objects.present())
        if not tasks:
            self.stdout.write("No tasks. Declare one with @task in an app's tasks.py, then run: manage.py tasks sync")
            return
        statuses = selectors.task_statuses(tasks)
        rows = [("ID", "KIND", "TRIGGER", "ENABLED", "STATUS", "LAST RUN")]
        for task in tasks:
            last = task.last_run_at.strftime("%Y-%m-%d %H:%M:%S") if task.last_run_at else "-"
            rows.append((task.id, task.kind, task.trigger, "yes" if task.enabled else "no", statuses[task.id], last))
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())

    def do_run(self, *, task_id: str, param: list[str], dry_run: bool, force: bool, wait: bool, **options: Any) -> None:
        values = {}
        for item in param:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise CommandError(f"--param takes KEY=VALUE, got {item!r}")
            values[key] = value
        run = services.trigger(
            task_id, source=RunTrigger.MANUAL, requested_by="cli", parameters=values, dry_run=dry_run, force=force
        )
        self.stdout.write(str(run.id))
        self.stdout.flush()
        if not wait:
            return
        run = self.follow(run)
        if run.status != RunStatus.COMPLETED:
            raise CommandError(f"Run {run.id} {run.status} ({run.end_reason})" + (f": {run.error}" if run.error else ""))

    def do_cancel(self, *, run_id: str, **options: Any) -> None:
        run = services.cancel_run(run_id)
        if run.is_active:
            self.stdout.write(f"Run {run.id}: cancel requested; it will stop within seconds.")
        else:
            self.stdout.write(f"Run {run.id}: {run.status}.")

    def do_show(self, *, run_id: str, **options: Any) -> None:
        run = services.get_run(run_id)
        fields = [
            ("Run", str(run.id)),
            ("Task", f"{run.task_id} ({run.task.title})"),
            ("Status", run.status + (f" ({run.end_reason})" if run.end_reason else "")),
            ("Trigger", f"{run.trigger} by {run.triggered_by or '-'}"),
            ("Parameters", ", ".join(f"{k}={v}" for k, v in run.parameters.items()) or "-"),
            ("Dry run", "yes" if run.dry_run else "no"),
            ("Created", _when(run.created_at)),
            ("Started", _when(run.started_at)),
            ("Ended", _when(run.ended_at)),
            ("Duration", f"{run.duration:.2f} s" if run.duration is not None else "-"),
            ("Progress", _progress_text(run)),
            ("Items", f"{run.items_processed} processed, {run.items_affected} affected"),
        ]
        if run.summary.get("actions"):
            fields.append(("Actions", ", ".join(f"{k} {v}" for k, v in sorted(run.summary["actions"].items()))))
        if run.result is not None:
            fields.append(("Result", str(run.result)))
        if run.error:
            fields.append(("Error", run.error))
        for label, value in fields:
            self.stdout.write(f"{label + ':':<12}{value}")

    def do_sync(self, **options: Any) -> None:
        report = services.sync_definitions(all_definitions())
        for key in ("created", "updated", "removed"):
            if report[key]:
                self.stdout.write(f"{key.capitalize()}: {', '.join(report[key])}")
        self.stdout.write(f"{len(report['created']) + len(report['updated'])} task(s) loaded.")

    # -- following a run --

    def follow(self, run: Run) -> Run:
        """Poll the run until it ends, drawing a progress bar (a line per change when not a TTY)."""
        tty = sys.stdout.isatty()
        last_line = ""
        while True:
            run.refresh_from_db()
            line = _bar(run)
            if line != last_line:
                if tty:
                    self.stdout.write("\r" + line.ljust(len(last_line)), ending="")
                else:
                    self.stdout.write(line)
                self.stdout.flush()
                last_line = line
            if not run.is_active:
                break
            time.sleep(0.2)
        if tty:
            self.stdout.write("")
        duration = f" in {run.duration:.1f} s" if run.duration is not None else ""
        self.stdout.write(f"Run {run.id} {run.status} ({run.end_reason}){duration}")
        return run


def _bar(run: Run) -> str:
    if run.status == RunStatus.QUEUED:
        return "queued: waiting for a worker"
    percent = run.percent
    if percent is None:
        return f"{run.status}: {run.progress_message or 'working'}"
    filled = int(BAR_WIDTH * percent / 100)
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent:5.1f}% {run.progress_message}"


def _progress_text(run: Run) -> str:
    if run.progress_current is None:
        return "-"
    total = f"/{run.progress_total:g}" if run.progress_total else ""
    percent = f" ({run.percent}%)" if run.percent is not None else ""
    return f"{run.progress_current:g}{total}{percent} {run.progress_message}".rstrip()


def _when(value: Any) -> str:
    return value.isoformat() if value else "-"
