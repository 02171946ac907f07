"""Where task definitions come from, and what they may say:

- ``declare``: ``@task`` on a callable in an app's ``tasks.py`` (the code registry);
- ``callables``: the dotted path a python definition names, checked on load and called by workers;
- ``load``: the TOML definitions file, and every definition (code and file) together;
- ``validate``: the field list, the defaults, and the one check of a definition, which fails with
  one line naming the task and the field;
- ``process``: the one check of a command task's process settings, shared with the admin's form;
- ``service``: the one check of a service task's settings (its process fields, its service fields,
  the task fields a service cannot have, ``depends_on`` across tasks), shared with the admin's form.

A definition is a plain dict of Task field values. ``services.sync_definitions`` writes them to
the Task table, keeping what an operator changed. Apps write ``from tasks_app.definitions import task``.
"""
from tasks_app.definitions.declare import task

__all__ = ["task"]
