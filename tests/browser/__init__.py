"""The admin in a real browser (Playwright driving Debian's chromium, headless), in two rooms:

- ``serve/``: against one real ``manage.py serve`` (web, worker, scheduler) for the whole folder,
  the live pages over a real WebSocket; no ORM while its Playwright loop runs;
- ``in_process/``: against pytest-django's in-process ``live_server``, for checks that set up
  rows with the ORM first.

Each room starts its own Playwright and closes it when its tests end (one sync Playwright per
thread at a time), so the two never overlap.
"""
