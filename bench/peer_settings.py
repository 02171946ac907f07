"""Settings for the bench's peer: raw django-q2 as it comes out of the box, on Taskdeck's database setup.

Everything is config.settings (so the same SQLite file kind and PRAGMAs: WAL, synchronous NORMAL,
IMMEDIATE transactions, busy timeout) except what django-q2 and Django would use by default:
Q_CLUSTER names only the cluster, the worker count (the same as Taskdeck's) and the ORM broker,
leaving poll 0.2 s, bulk 1, save_limit 250, recycle 500, timeout None, retry 60, scheduler on;
and CONN_MAX_AGE is Django's default, 0.
"""
from __future__ import annotations

import warnings

from config.settings import *  # noqa: F403 (the peer differs from Taskdeck only below)
from config.settings import DATABASES as _TASKDECK_DATABASES
from config.settings import TASKDECK_WORKERS

# django-q2 warns at import that timeout None and retry 60 are "misconfigured"; they are its
# defaults, which is the point here, so keep the warning out of the bench's output.
warnings.filterwarnings("ignore", message="Retry and timeout are misconfigured")

DATABASES = {**_TASKDECK_DATABASES, "default": {**_TASKDECK_DATABASES["default"], "CONN_MAX_AGE": 0}}

Q_CLUSTER = {"name": "peer", "workers": TASKDECK_WORKERS, "orm": "default"}
