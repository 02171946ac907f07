"""tasks_app/live/logs.py and GET /api/runs/{id}/log/stream over a real `serve` (``clients.serving``):
a run's output as it lands, resumed by byte offset, ended with the run; then a follower over a
relay of the test's own, woken by the writer's events rather than polling the chunk table."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

from tasks_app import services
from tasks_app.execution.output import LogWriter
from tasks_app.live import logs
from tasks_app.live.relay import Relay
from tasks_app.models import LogOnFull, RunStatus

from ..factories import make_run, make_task, write_log
from .clients import Live, trigger
from .loops import close, run_apart


@dataclass
class Message:
    event: str
    data: str
    id: int | None = None


@dataclass
class LogStream:
    """An SSE connection to a run's log, read message by message as EventSource would (data lines
    joined by ``\\n``; lines end at LF only here, since the server writes nothing else)."""

    response: requests.Response
    comments: int = 0
    lines: object = field(init=False)

    def __post_init__(self) -> None:
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        self.lines = self.response.iter_lines(decode_unicode=True, delimiter="\n")
        assert next(self.lines).startswith("retry:")  # subscribed: from here no output passes it by
        next(self.lines)

    def next(self, *, within: float = 20) -> Message | None:
        """The next message, None when the stream ended."""
        event, data, last_id = "", [], None
        deadline = time.monotonic() + within
        for line in self.lines:
            assert time.monotonic() < deadline, f"no message within {within} s"
            if line == "":
                if event:
                    return Message(event, "\n".join(data), last_id)
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                last_id = int(value)
        return None

    def until_end(self) -> tuple[list[Message], Message]:
        messages = []
        while (message := self.next()) is not None:
            if message.event == "end":
                assert self.next() is None  # and the stream ends
                return messages, message
            messages.append(message)
        raise AssertionError(f"the stream ended without an end event after {messages[-3:]}")

    def close(self) -> None:
        self.response.close()


def log_stream(live: Live, run_id: str, query: str = "", **headers: str) -> LogStream:
    return LogStream(requests.get(f"{live.base}/api/runs/{run_id}/log/stream{query}", stream=True, timeout=30,
                                  headers={"X-API-Key": live.read_key, **headers}))


ODD = "caf\ufffd.rom"  # the undecodable name's byte, replaced


def expected_lines(lines: int) -> str:
    before = [f"before {index:04d} {ODD if index == 1 else 'é€'}\n" for index in range(lines)]
    return "".join(before) + "".join(f"after {index:04d}\n" for index in range(lines))


def test_output_streams_while_the_run_goes_and_the_stream_ends_with_the_run(live, tmp_path):
    gate = tmp_path / "gate"
    run_id = trigger(live, "talking", parameters={"lines": 40, "gate": str(gate)})
    stream = log_stream(live, run_id)
    seen = []
    while "before 0039" not in "".join(message.data for message in seen):
        seen.append(stream.next())
        assert seen[-1].event == "log"
    run = requests.get(f"{live.base}/api/runs/{run_id}", headers={"X-API-Key": live.read_key}, timeout=10).json()
    assert run["status"] == "running"  # the first half arrived while the run was still going
    gate.touch()
    rest, end = stream.until_end()
    text = "".join(message.data for message in seen + rest)
    log = requests.get(f"{live.base}/api/runs/{run_id}/log", headers={"X-API-Key": live.read_key}, timeout=10)
    assert text == expected_lines(40) == log.text
    assert [message.id for message in seen + rest] == sorted({message.id for message in seen + rest})
    assert seen[-1].id < rest[-1].id == end.id == int(log.headers["X-Log-Size"])
    assert json.loads(end.data) == {"run_id": run_id, "status": "completed", "end_reason": "success",
                                    "size": int(log.headers["X-Log-Size"])}


def test_a_stream_resumes_from_its_last_event_id_or_an_offset_and_an_ended_run_ends_it_at_once(live):
    run_id = trigger(live, "talking", parameters={"lines": 30})
    first, end = log_stream(live, run_id).until_end()
    assert "".join(message.data for message in first) == expected_lines(30)
    stored = expected_lines(30).encode().replace(ODD.encode(), b"caf\xe9.rom")  # offsets count stored bytes
    middle = stored.index(b"after 0010")
    for resumed in (log_stream(live, run_id, **{"Last-Event-ID": str(middle)}), log_stream(live, run_id, f"?offset={middle}"),
                    log_stream(live, run_id, "?offset=0", **{"Last-Event-ID": str(middle)})):  # the header wins
        rest, again = resumed.until_end()
        assert "".join(message.data for message in rest).encode() == stored[middle:]
        assert again.id == end.id == len(stored)
    nothing, last = log_stream(live, run_id, **{"Last-Event-ID": str(end.id)}).until_end()
    assert nothing == [] and last.id == end.id


def test_the_log_stream_answers_with_problems_like_the_other_run_routes(live):
    run_id = trigger(live, "quick")
    url = f"{live.base}/api/runs/{run_id}/log/stream"
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["Content-Type"] == "application/problem+json"
    visitor = requests.get(url, cookies={"sessionid": live.visitor_session}, timeout=10)
    assert visitor.status_code == 403 and visitor.json()["type"] == "/api/problems/permission-denied"
    bad = requests.get(url, headers={"X-API-Key": live.read_key, "Last-Event-ID": "x"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["errors"][0]["location"] == "header.Last-Event-ID"
    negative = requests.get(f"{url}?offset=-1", headers={"X-API-Key": live.read_key}, timeout=10)
    assert negative.status_code == 400 and negative.json()["errors"][0]["location"] == "query.offset"
    unknown = requests.get(f"{live.base}/api/runs/00000000-0000-0000-0000-000000000000/log/stream",
                           headers={"X-API-Key": live.read_key}, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["type"] == "/api/problems/run-not-found"


# --- A follower over a relay of the test's own --------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_follower_reads_when_the_writer_announces_output_and_stops_at_the_run_end():
    run = services.claim_run(make_run(make_task()).pk)
    write_log(run, b"already there\n")
    writer = LogWriter(run.pk, task_id=run.task_id, max_size=10**6, on_full=LogOnFull.DROP_OLD)
    got: list[bytes] = []
    read_first = threading.Event()

    async def scenario() -> logs.LogEnd:
        relay = Relay()
        try:
            async with logs.followed(str(run.pk), offset=0, relay=relay) as follower:
                async for item in follower.items(quiet_after=30):  # no keep-alive re-read in this test
                    if isinstance(item, logs.LogEnd):
                        return item
                    assert item is not None
                    got.append(item.data)
                    if len(got) == 1:
                        read_first.set()
        finally:
            await close(relay)
        raise AssertionError("no end")

    def drive() -> None:
        read_first.wait(10)
        writer.write(b"one\n")
        writer.flush()
        writer.write(b"two\n")
        writer.close()
        services.finish_run(run.pk, reason="success")

    driver = threading.Thread(target=drive)
    driver.start()
    result: list[logs.LogEnd] = []
    run_apart(lambda: _collect(scenario, result))
    driver.join()
    assert b"".join(got) == b"already there\none\ntwo\n"
    assert result[0] == logs.LogEnd(RunStatus.COMPLETED, "success", 22)


async def _collect(scenario, into: list) -> None:
    into.append(await scenario())
