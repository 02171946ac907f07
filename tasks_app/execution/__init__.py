"""Running a claimed run inside a worker: the one entry, the executors, and what they share.

Modules, bottom first (each imports only those before it; tests/test_imports.py checks):

- ``outcome``: how a run's code ended, as an executor reports it (``Outcome``);
- ``flusher``: the one thread per process that stores every open log writer's output;
- ``output``: a run's output on its way to its log (``LogWriter``, capped by ``LogBuffer``), for
  print and ctx.log and for a command's stdout and stderr;
- ``command_line``: a command run's argv and environment, as API.md orders them;
- ``context``: ``RunContext``, the ``ctx`` task code receives, and ``RunCancelled``;
- ``running``: one started command (``RunningProcess``): its group, its output into its log, its
  stop and its end, driven by a poll loop (the command executor's, a supervisor's);
- ``watchdog``: the thread that heartbeats a run and enforces stop requests and its timeout;
- ``python``: the executor of python tasks;
- ``process``: the executor of command tasks (a process group, its output into the run's log);
- ``entry``: ``execute_run``, django-q2's entry: claim, the executor for the task's kind, finish.

The package sits above the services: it calls them for every write (claim, progress, end), and
no service imports it.
"""
