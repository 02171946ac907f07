"""What a supervisor's turn has to write, written together: the runs of instances that ended, and
the instances found healthy (at boot and at shutdown, hundreds at once; one by one, each a
transaction, they took seconds).

Ends are kept while the database refuses them and tried again each turn; the supervisor starts
no instance while any is kept, since an instance's old run must be ended before its next one
begins. States found healthy are not kept: written later, they could overwrite an end.
"""
from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError

from tasks_app import services
from tasks_app.models import InstanceState, Run

logger = logging.getLogger(__name__)


class TurnRecords:
    def __init__(self) -> None:
        self.ends: list[services.InstanceEnd] = []
        self.healthy: list[tuple[str, int, str, str]] = []

    def ended(self, run: Run, *, reason: str, state: str, fields: dict[str, Any], **extra: Any) -> None:
        self.ends.append(services.InstanceEnd(run, reason, state, fields, **extra))

    def found_healthy(self, task_id: str, index: int, why: str) -> None:
        self.healthy.append((task_id, index, InstanceState.RUNNING, f"healthy: {why}"))

    def write_ends(self) -> bool:
        """Write the ends kept; whether none is left."""
        if not self.ends:
            return True
        try:
            services.instances_ended(self.ends)
        except DatabaseError as error:
            logger.warning("Could not record the end of %d instance run(s) (%s); trying again.", len(self.ends), error)
            return False
        self.ends = []
        return True

    def write_healthy(self) -> None:
        healthy, self.healthy = self.healthy, []
        try:
            services.set_instances_state(healthy)
        except DatabaseError as error:  # the rows say starting until the next restart
            logger.warning("Could not record %d instance(s) healthy (%s).", len(healthy), error)
