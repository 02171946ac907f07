"""The machine Taskdeck runs on, as its own processes see it: ``children``, serve's web, worker
and scheduler kept alive (with restart back-off), the process-tree helpers the worker uses, and
``filewatch``, the one home of the file-watching library (a path watched on a thread of its own).

Named apart from the coming process executor (``execution/``), which runs task code as processes:
this package only keeps Taskdeck's own processes alive.
"""
