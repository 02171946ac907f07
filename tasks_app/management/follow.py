"""A run's log read from a terminal: whole as stored (``manage.py tasks log``), or followed until
the run ends (``tasks run --wait``, ``tasks log --follow``).

The command is a process of its own beside the database, with no relay to wake it: a follower
reads the log from the offset it reached, a page at a time until caught up, looks at the run (for
the status line), and waits ``interval`` seconds. It stops once a read finds the run ended and
nothing after its offset. That read is complete: a run's status and its log's size come from one
statement (``selectors.log_bounds``), and a run's last output is stored before its end is
recorded, so no byte can land after a read that saw the end.

Output is bytes as the run wrote them, with the marker line ``[taskdeck: N bytes dropped]`` where
``drop_old`` cut bytes the follower had not read yet (``LogPiece.as_bytes``, as the API's reader
puts it in text). Only pages are held in memory, never a whole log.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from tasks_app import selectors, services
from tasks_app.exceptions import RunNotFound
from tasks_app.models import Run


def gone(run_id: uuid.UUID | str) -> RunNotFound:
    return RunNotFound(f"Run {run_id} does not exist (or was removed by retention).")


def stored_log(run_id: uuid.UUID | str) -> Iterator[bytes]:
    """The log as stored when first read: page after page, up to the size that read found (a
    running run's later output is left to ``RunFollower``)."""
    piece = selectors.read_log(run_id, offset=0)
    if piece is None:
        raise gone(run_id)
    until = piece.size
    while True:
        if piece.data or piece.dropped:
            yield piece.as_bytes()
        if piece.end >= until:
            return
        following = selectors.read_log(run_id, offset=piece.end, until=until)
        if following is None:
            raise gone(run_id)
        if following.end == piece.end:  # nothing readable before ``until`` any more
            return
        piece = following


class RunFollower:
    """One run followed from byte ``offset``: its output as it is stored, and the run after each
    catch-up."""

    #: Seconds between two looks once caught up: about what a flush of the run's log waits too.
    interval = 0.2

    def __init__(self, run_id: uuid.UUID | str, *, offset: int = 0) -> None:
        self.run_id = run_id
        self.offset = offset
        """The next byte to read."""

    def items(self) -> Iterator[bytes | Run]:
        """Output (bytes) as it lands, and the run (a ``Run``) each time the follower has caught
        up; the last item is the ended run, after its last byte. Raises ``RunNotFound`` if the
        run disappears."""
        while True:
            piece = selectors.read_log(self.run_id, offset=self.offset)
            if piece is None:
                raise gone(self.run_id)
            if piece.data or piece.dropped:
                self.offset = piece.end
                yield piece.as_bytes()
                if piece.end < piece.size:
                    continue  # more is stored already: read it before looking at the run
            ended = not piece.bounds.active and self.offset >= piece.size
            yield services.get_run(self.run_id)
            if ended:
                return
            time.sleep(self.interval)
