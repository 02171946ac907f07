"""python manage.py worker: a django-q2 worker cluster kept by Taskdeck (tasks_app/workers.py)."""
from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from tasks_app.management.errors import database_errors_in_one_line
from tasks_app.workers import Worker


class Command(BaseCommand):
    help = ("Run a worker cluster: executes runs; on SIGTERM or Ctrl-C its runs get --grace seconds to stop, "
            "then end shutdown. A cluster that dies is started again.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--grace", type=float, default=10.0,
                            help="Seconds running runs get to stop when the worker stops (default %(default)s).")

    def handle(self, *args: Any, grace: float, **options: Any) -> None:
        with database_errors_in_one_line():
            code = Worker(grace=grace).run_forever()
        if code:
            sys.exit(code)
