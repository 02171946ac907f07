"""The machine Taskdeck runs on, as its own processes see it: ``children``, serve's web, worker
and scheduler kept alive (with restart back-off), and the process-tree helpers the worker uses.

Named apart from the coming process executor (``execution/``), which runs task code as processes:
this package only keeps Taskdeck's own processes alive.
"""
