"""tasks_app/admin/runs.py: the run page, its live endpoint (fragments and output tail), cancel."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tasks_app.definitions.process import check_process
from tasks_app.models import Activity, Run, RunStatus, TaskKind

from ..factories import make_run, make_task, write_log
from .conftest import staff_client

pytestmark = pytest.mark.django_db

XSS = "<script>window.pwned = 1</script><b>bold</b>"


def running_run(clock, **fields):
    task = make_task(id=fields.pop("task_id", "scan"))
    started = clock.now() - timedelta(seconds=30)
    return make_run(task, status=RunStatus.RUNNING, started_at=started, **fields)


def add_activity(run, count, **fields):
    Activity.objects.bulk_create([
        Activity(run=run, item_id=f"item:{index}", item_title=f"Item {index}", action=fields.get("action", "scan"),
                 status=fields.get("status", "success"), timestamp=run.created_at)
        for index in range(1, count + 1)])


def test_the_run_page_shows_progress_with_eta_activity_output_and_a_cancel_button(root_client, clock):
    run = write_log(running_run(clock, progress_current=25, progress_total=100, progress_message="Scanning gba"),
                    "line one\nline two\n")
    add_activity(run, 3)

    page = root_client.get(f"/admin/tasks_app/run/{run.pk}/change/").content.decode()

    assert 'style="width: 25.0%"' in page and 'aria-valuenow="25"' in page
    assert re.search(r"<strong data-progress-percent>25%</strong>\s*<span class=\"td-muted\">25 / 100</span>", page)
    assert "about 1 min 30 s left" in page  # 30 s for the first quarter
    assert 'value="Cancel this run"' in page and f'action="/admin/tasks_app/run/{run.pk}/cancel/"' in page
    # Forms of their own, so never inside the change form (a browser would send that one instead).
    assert page.index('class="td-run"') < page.index('id="run_form"') and "</form>" in page[:page.index('id="run_form"')]
    assert page.count('class="td-row-success"') == 3
    assert 'data-live-log data-log-offset="18">line one\nline two\n</pre>' in page
    assert f'data-live-run="{run.pk}"' in page and 'data-live-poll="2000"' in page


def test_the_live_endpoint_sends_fragments_and_the_output_after_an_offset(root_client, clock):
    run = write_log(running_run(clock, progress_current=5, progress_total=10), "0123456789")

    body = root_client.get(f"/admin/tasks_app/run/{run.pk}/live/?log_offset=4").json()

    assert set(body["fragments"]) == {"status", "progress", "outcome", "activity", "details"}
    assert body["active"] is True and body["percent"] == 50.0
    assert body["log"] == {"text": "456789", "offset": 10, "size": 10}
    write_log(run, "abc", at=10)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED, end_reason="success", ended_at=clock.now())
    body = root_client.get(f"/admin/tasks_app/run/{run.pk}/live/?log_offset=10").json()
    assert body["log"]["text"] == "abc" and body["active"] is False
    assert "Cancel this run" not in body["fragments"]["outcome"] and "Completed" in body["fragments"]["status"]


def test_activity_is_filtered_and_paginated(root_client, clock):
    run = running_run(clock)
    add_activity(run, 60, action="keep")
    add_activity(run, 5, action="delete", status="failed")
    url = f"/admin/tasks_app/run/{run.pk}/live/"

    first = root_client.get(url).json()["fragments"]["activity"]
    second = root_client.get(url, {"activity_page": 2}).json()["fragments"]["activity"]
    failed = root_client.get(url, {"activity_status": "failed"}).json()["fragments"]["activity"]

    assert first.count("<tr class=") == 50 and "page 1 of 2" in first and 'href="?activity_page=2#activity"' in first
    assert second.count("<tr class=") == 15 and "page 2 of 2" in second
    assert failed.count('class="td-row-failed"') == 5 and "5 items match" in failed
    assert '<option value="delete">delete</option>' in first and '<option value="failed">failed</option>' in first


def test_cancel_from_the_run_page(root_client, clock):
    task = make_task(id="waiting")
    queued = make_run(task)

    assert root_client.get(f"/admin/tasks_app/run/{queued.pk}/cancel/").status_code == 405
    response = root_client.post(f"/admin/tasks_app/run/{queued.pk}/cancel/", follow=True)

    queued.refresh_from_db()
    assert queued.status == RunStatus.CANCELLED
    assert f"Run {str(queued.pk)[:8]}: cancelled." in response.content.decode()
    again = root_client.post(f"/admin/tasks_app/run/{queued.pk}/cancel/", follow=True).content.decode()
    assert "already ended" in again
    viewer = staff_client("view_run")
    assert viewer.post(f"/admin/tasks_app/run/{queued.pk}/cancel/").status_code == 403
    assert "Cancel this" not in viewer.get(f"/admin/tasks_app/run/{queued.pk}/change/").content.decode()


def test_output_errors_and_activity_are_escaped_and_the_traceback_is_for_superusers(root_client, clock):
    task = make_task(id="bad")
    run = make_run(task, end_reason="failed", error=XSS, traceback="Traceback: secret frame",
                   progress_message=XSS, summary={"note": XSS})
    write_log(run, XSS)
    Activity.objects.create(run=run, item_id="x", item_title=XSS, action="delete", status="failed",
                            timestamp=run.created_at, message=XSS)
    viewer = staff_client("view_run")

    for client in (root_client, viewer):
        page = client.get(f"/admin/tasks_app/run/{run.pk}/change/").content.decode()
        live = client.get(f"/admin/tasks_app/run/{run.pk}/live/?log_offset=0").json()
        for html in (page, *live["fragments"].values()):
            assert "<script>window.pwned" not in html and "<b>bold</b>" not in html
        assert page.count("&lt;script&gt;window.pwned = 1&lt;/script&gt;") >= 5
        assert live["log"]["text"] == XSS  # plain text, appended as a text node by live.js
    assert "secret frame" in root_client.get(f"/admin/tasks_app/run/{run.pk}/change/").content.decode()
    assert "secret frame" not in viewer.get(f"/admin/tasks_app/run/{run.pk}/change/").content.decode()
    assert "secret frame" not in str(viewer.get(f"/admin/tasks_app/run/{run.pk}/live/").json())


def test_the_output_tail_continues_after_a_dropped_head_and_never_splits_a_character(root_client, clock, monkeypatch):
    from tasks_app.admin import runs

    run = write_log(running_run(clock), "kept", at=100)
    body = root_client.get(f"/admin/tasks_app/run/{run.pk}/live/?log_offset=10").json()
    # The bytes the cap dropped keep their offsets: a marker line stands where they were.
    assert body["log"] == {"text": "[taskdeck: 90 bytes dropped]\nkept", "offset": 104, "size": 104}
    assert root_client.get(f"/admin/tasks_app/run/{run.pk}/live/?log_offset=104").json()["log"] == {
        "text": "", "offset": 104, "size": 104}

    monkeypatch.setattr(runs, "OUTPUT_CHUNK_BYTES", 5)
    other = write_log(running_run(clock, task_id="other"), "abcé€xyz", chunk_size=4)  # é is 2 bytes, € 3
    chunks, offset = [], 0
    while True:
        log = root_client.get(f"/admin/tasks_app/run/{other.pk}/live/?log_offset={offset}").json()["log"]
        if not log["text"]:
            break
        chunks.append(log["text"])
        offset = log["offset"]
    assert "".join(chunks) == "abcé€xyz" and offset == len("abcé€xyz".encode()) and len(chunks) > 1


def test_the_run_page_shows_a_binary_log_as_escaped_text_with_the_dropped_bytes_marker(root_client, clock):
    raw = b"<b>caf\xe9</b> \xff\x00 ok\n"
    run = write_log(running_run(clock), raw, at=1234567)
    page = root_client.get(f"/admin/tasks_app/run/{run.pk}/change/").content.decode()
    shown = "[taskdeck: 1,234,567 bytes dropped]\n&lt;b&gt;caf\ufffd&lt;/b&gt; \ufffd\x00 ok\n"
    assert f'data-log-offset="{1234567 + len(raw)}">{shown}</pre>' in page
    live = root_client.get(f"/admin/tasks_app/run/{run.pk}/live/?log_offset=0").json()["log"]
    assert live == {"text": "[taskdeck: 1,234,567 bytes dropped]\n<b>caf\ufffd</b> \ufffd\x00 ok\n",
                    "offset": 1234567 + len(raw), "size": 1234567 + len(raw)}  # live.js appends it as a text node


def test_the_run_page_shows_the_tail_of_a_long_log_and_says_its_head_was_dropped(root_client, clock):
    from tasks_app.admin.runs import OUTPUT_TAIL_BYTES

    lines = b"".join(b"line %07d\n" % index for index in range(20_000))  # 260,000 bytes
    run = write_log(running_run(clock), lines, at=500, chunk_size=65_536)
    page = root_client.get(f"/admin/tasks_app/run/{run.pk}/change/").content.decode()
    assert "Showing the last part only" in page and "Its first 500 bytes were dropped" in page
    shown = re.search(r"data-live-log data-log-offset=\"(\d+)\">([^<]*)</pre>", page)
    assert int(shown.group(1)) == 500 + len(lines)
    assert shown.group(2) == lines[-OUTPUT_TAIL_BYTES:].decode() and shown.group(2).endswith("line 0019999\n")


def test_a_command_runs_process_row_shows_its_pid_and_exit_and_python_runs_have_none(root_client, clock):
    command = make_task(id="backup", kind=TaskKind.COMMAND, callable="", process=check_process("backup", {"command": "true"}))
    running = make_run(command, status=RunStatus.RUNNING, started_at=clock.now(), pid=4242)
    killed = make_run(command, end_reason="timeout", pid=4243, exit_signal="SIGKILL")
    exited = make_run(command, end_reason="failed", pid=4244, exit_code=3)
    python = make_run(make_task(id="report"), end_reason="success")

    def process_row(run):
        details = root_client.get(f"/admin/tasks_app/run/{run.pk}/live/").json()["fragments"]["details"]
        assert details in root_client.get(f"/admin/tasks_app/run/{run.pk}/change/").content.decode()
        row = re.search(r'<tr class="td-process">(.*?)</tr>', details, re.S)
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row.group(1))).strip() if row else None

    assert process_row(running) == "Process pid 4242 Exit -"
    assert process_row(killed) == "Process pid 4243 Exit killed by signal SIGKILL"
    assert process_row(exited) == "Process pid 4244 Exit exit code 3"
    assert process_row(python) is None  # no empty process fields on a python run


def test_the_activity_list_offers_recent_values_and_filters_by_any(root_client, clock, monkeypatch):
    from tasks_app.admin.runs import RecentValuesFilter

    run = running_run(clock)
    add_activity(run, 3, action="archive", status="skipped")  # older rows
    add_activity(run, 5, action="keep")
    add_activity(run, 2, action="delete", status="failed")
    monkeypatch.setattr(RecentValuesFilter, "SAMPLE", 7)  # the 7 newest rows: keep x5, delete x2

    page = root_client.get("/admin/tasks_app/activity/").content.decode()
    filtered = root_client.get("/admin/tasks_app/activity/", {"action": "archive"}).content.decode()

    assert '?action=keep"' in page and '?action=delete"' in page and '?action=archive"' not in page
    assert '?status=failed"' in page and '?status=skipped"' not in page
    assert filtered.count('<td class="field-action">archive</td>') == 3 and "field-action\">keep" not in filtered
