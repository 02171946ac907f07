"""The machine Taskdeck runs on, as its own processes see it: ``children``, serve's web, worker
and scheduler kept alive (with restart back-off), and the process-tree helpers the worker uses;
``groups``, a command's process group started, signalled and killed as one; ``keeper``, the small
process beside each process that starts commands, which kills their groups once it dies;
``filewatch``, the one home of the file-watching library (a path watched on a thread of its own);
``stopflag``, a stop raised by a signal handler without taking a lock; ``wakeups``, datagrams
between processes of one host.

Apart from the executors (``execution/``), which decide what runs and when: this package only
knows processes and files.
"""
