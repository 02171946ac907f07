"""python manage.py scheduler: the scheduler process (ticks, reaping, held runs)."""
from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand

from tasks_app.scheduling.loop import Scheduler


class Command(BaseCommand):
    help = "Run the Taskdeck scheduler: fires schedules and ends runs whose worker is gone."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--interval", type=float, default=None, help="Seconds between passes.")

    def handle(self, *args: Any, interval: float | None, **options: Any) -> None:
        scheduler = Scheduler(interval=interval)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: scheduler.stop())
        scheduler.run_forever()
