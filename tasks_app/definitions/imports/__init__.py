"""The files operators bring, read as task definitions (API.md "Compose and other imports"):

- ``entries``: what an importer reads a file into (an ``Entry`` per service, line or program,
  each with what could not be carried over), the one build of those entries into definitions
  (``build_definition``, then ``depends_on`` across them, as the loader checks them), and the
  definitions file ``--output`` writes;
- ``compose``: a docker compose file's services, each run by ``docker compose run``;
- ``crontab``: a crontab's lines, as command tasks with their cron strings;
- ``supervisord``: a supervisord configuration's ``[program:x]`` sections, as services.

A reader only reads: a file it cannot make sense of raises ``ImportFileError`` naming the file
and where in it, and nothing is written. ``services.import_definitions`` writes what it read.
"""
