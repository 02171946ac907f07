"""python manage.py supervisor: the supervisor process (keeps service instances running and file
watchers watching)."""
from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand

from tasks_app.supervision.supervisor import Supervisor


class Command(BaseCommand):
    help = ("Run the Taskdeck supervisor: keeps every service's instances running and every enabled file "
            "watcher watching, one owner per instance or watcher however many supervisors share the database.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--interval", type=float, default=None,
                            help="Seconds between looks at the database (default TASKDECK_SUPERVISOR_INTERVAL).")

    def handle(self, *args: Any, interval: float | None, **options: Any) -> None:
        supervisor = Supervisor() if interval is None else Supervisor(interval=interval)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: supervisor.stop())
        supervisor.run_forever()
