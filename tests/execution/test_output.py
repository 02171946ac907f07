"""execution/output.py: ``LogBuffer`` on its own (offsets, the cap in its three modes, markers: no
database), then ``LogWriter`` storing into the run log table (chunks, coalescing, the cut, events)."""
import os
import random
import threading
import zlib

import pytest

from tasks_app import selectors, services
from tasks_app.execution.output import FLUSH_BYTES, Flush, LogBuffer, LogWriter, Pending
from tasks_app.models import Event, EventName, LogOnFull, RunLogChunk, RunStatus, StopRequest
from tasks_app.services.progress import COALESCE_BYTES

from ..factories import log_of, make_run, make_task

DROP_OLD, DROP_NEW, KILL_TASK = LogOnFull.DROP_OLD, LogOnFull.DROP_NEW, LogOnFull.KILL_TASK
FULL_NEW = b"[taskdeck: log_max_size of 10 bytes reached; later output is dropped (log_on_full = drop_new)]\n"
FULL_KILL = b"[taskdeck: log_max_size of 10 bytes reached; stopping the run (log_on_full = kill_task)]\n"


def taken(buffer: LogBuffer, *, final: bool = False) -> Flush | None:
    return buffer.take(final=final)


# --- Pending ------------------------------------------------------------------------------------


def test_pending_keeps_large_writes_as_they_are_and_gathers_small_ones():
    pending = Pending()
    large = b"L" * Pending.GATHER
    pending.add(b"ab")
    pending.add(large)
    pending.add(b"c")
    assert (len(pending), bytes(pending)) == (Pending.GATHER + 3, b"ab" + large + b"c")
    assert pending.take(Pending.GATHER + 2)[2:] == large and pending.last(4) == b"c"
    pending.add(bytearray(b"d" * Pending.GATHER))  # a buffer its writer may reuse: copied
    assert pending.take(10) == b"c" + b"d" * 9


def test_pending_takes_drops_and_puts_back_bytes_as_one_bytearray_would():
    rng = random.Random(14)
    pending, model = Pending(), bytearray()
    for step in range(3000):
        action = rng.random()
        if action < 0.55:
            data = os.urandom(rng.choice([1, 7, 100, 5000, Pending.GATHER, 3 * Pending.GATHER]))
            pending.add(data)
            model += data
        elif action < 0.7:
            count = rng.randint(0, len(model))
            pending.drop(count)
            del model[:count]
        elif action < 0.85:
            count = rng.randint(0, len(model))
            taken = pending.take(count)
            assert taken == model[:count], step
            del model[:count]
            if rng.random() < 0.3:  # refused: it goes back in front
                pending.prepend(taken)
                model[:0] = taken
        else:
            assert pending.last(4) == model[-4:], step
        assert len(pending) == len(model), step
    assert bytes(pending) == model


# --- LogBuffer ------------------------------------------------------------------------------------


@pytest.mark.parametrize("on_full", [DROP_OLD, DROP_NEW, KILL_TASK])
def test_nothing_pending_takes_nothing_and_under_the_cap_bytes_are_added_in_order(on_full):
    buffer = LogBuffer(max_size=10, on_full=on_full)
    assert taken(buffer) is None
    buffer.write(b"")
    assert taken(buffer) is None
    buffer.write(b"abc")
    buffer.write(b"de")
    assert taken(buffer) == Flush(start=0, data=b"abcde", kept_from=None, overflowed=False)
    buffer.write(b"fghij")  # just fills the cap: nothing dropped
    assert taken(buffer) == Flush(start=5, data=b"fghij", kept_from=None, overflowed=False)
    buffer.close()
    assert taken(buffer, final=True) is None and buffer.end == 10


def test_the_cap_is_at_least_a_byte_and_the_mode_one_of_three():
    with pytest.raises(ValueError):
        LogBuffer(max_size=0, on_full=DROP_OLD)
    with pytest.raises(ValueError):
        LogBuffer(max_size=10, on_full="drop_everything")


def test_drop_old_keeps_the_newest_bytes_and_the_dropped_head_keeps_its_offsets():
    buffer = LogBuffer(max_size=10, on_full=DROP_OLD)
    buffer.write(b"0123456789")
    assert taken(buffer) == Flush(0, b"0123456789", None, False)
    buffer.write(b"abc")  # 13 written: the store drops [0, 3)
    assert taken(buffer) == Flush(10, b"abc", 3, False)
    buffer.write(b"defg")
    buffer.write(b"hij")  # 20 written, all 10 kept ones waiting: the stored bytes all go
    assert taken(buffer) == Flush(13, b"defghij", 10, False)
    assert taken(buffer) is None  # the cut is told once


def test_drop_old_cuts_what_waits_too_so_memory_stays_within_the_cap():
    buffer = LogBuffer(max_size=4, on_full=DROP_OLD)
    buffer.write(b"ab")
    buffer.write(b"0123456789")  # 12 written, none stored yet: only the last 4 wait
    assert (bytes(buffer.pending), buffer.pending_start) == (b"6789", 8)
    buffer.write(b"x" * 1_000_000)
    assert len(buffer.pending) == 4 and buffer.end == 1_000_012
    assert taken(buffer) == Flush(1_000_008, b"xxxx", 1_000_008, False)


@pytest.mark.parametrize(("on_full", "marker"), [(DROP_NEW, FULL_NEW), (KILL_TASK, FULL_KILL)])
def test_drop_new_and_kill_task_keep_the_oldest_bytes_store_a_marker_and_count_the_rest(on_full, marker):
    buffer = LogBuffer(max_size=10, on_full=on_full)
    buffer.write(b"01234567")
    assert taken(buffer).data == b"01234567"
    buffer.write(b"89abcdef")  # 2 fit; the marker on a line of its own; 6 discarded
    flush = taken(buffer)
    assert flush == Flush(8, b"89\n" + marker, None, on_full == KILL_TASK)
    assert buffer.overflowed is (on_full == KILL_TASK)
    buffer.write(b"more output\n")
    assert taken(buffer) is None  # discarded, and the stop is asked for once
    buffer.close()
    assert taken(buffer, final=True) == Flush(flush.start + len(flush.data), b"[taskdeck: 18 bytes dropped]\n", None, False)
    buffer.write(b"after the end")
    assert taken(buffer, final=True) is None


def test_a_marker_after_a_whole_line_needs_no_line_break_of_its_own():
    buffer = LogBuffer(max_size=6, on_full=DROP_NEW)
    buffer.write(b"line\nnext")
    assert taken(buffer).data == b"line\nn\n" + FULL_NEW.replace(b" 10 ", b" 6 ")
    buffer = LogBuffer(max_size=5, on_full=DROP_NEW)
    buffer.write(b"line\nnext")
    assert taken(buffer).data == b"line\n" + FULL_NEW.replace(b" 10 ", b" 5 ")


def test_a_character_not_complete_yet_waits_for_the_next_flush_but_not_the_last():
    buffer = LogBuffer(max_size=100, on_full=DROP_OLD)
    euro = "€".encode()
    buffer.write(b"price: " + euro[:2])
    assert taken(buffer) == Flush(0, b"price: ", None, False)
    buffer.write(euro[2:] + b" and " + euro[:1])
    assert taken(buffer) == Flush(7, euro + b" and ", None, False)
    assert taken(buffer, final=True) == Flush(15, euro[:1], None, False)
    buffer.write(b"\xff\xfe")  # not the start of a character: nothing to wait for
    assert taken(buffer).data == b"\xff\xfe"


def test_a_flush_put_back_is_taken_again_in_front_of_what_came_meanwhile():
    buffer = LogBuffer(max_size=100, on_full=KILL_TASK)
    buffer.write(b"one ")
    refused = taken(buffer)
    buffer.write(b"two")
    buffer.put_back(refused)
    assert taken(buffer) == Flush(0, b"one two", None, False)
    buffer = LogBuffer(max_size=3, on_full=KILL_TASK)
    buffer.write(b"abcdef")
    refused = taken(buffer)
    assert refused.overflowed
    buffer.put_back(refused)
    assert taken(buffer).overflowed  # the stop request is owed again


def test_a_drop_old_flush_put_back_loses_what_the_cap_dropped_meanwhile():
    buffer = LogBuffer(max_size=6, on_full=DROP_OLD)
    buffer.write(b"abcd")
    refused = taken(buffer)
    buffer.write(b"efgh")  # 8 written: [0, 2) dropped
    buffer.put_back(refused)
    assert taken(buffer) == Flush(2, b"cdefgh", 2, False)


def test_a_writer_that_finds_bytes_stored_follows_them():
    buffer = LogBuffer(max_size=4, on_full=DROP_OLD)
    buffer.write(b"abcdef")
    buffer.start_after(100)
    assert taken(buffer) == Flush(102, b"cdef", 102, False)


# --- LogWriter, into the store ----------------------------------------------------------------------


@pytest.fixture
def claimed():
    return services.claim_run(make_run(make_task()).pk)


def chunks(run) -> list[tuple[int, int, int]]:
    """(start, end, bytes held) of each of the run's chunks, in order."""
    rows = RunLogChunk.objects.filter(run=run).order_by("end").values_list("start", "end", "data")
    return [(start, end, len(data)) for start, end, data in rows]


def writer(run, *, max_size: int = 10**9, on_full: str = DROP_OLD, **options) -> LogWriter:
    return LogWriter(run.pk, task_id=run.task_id, max_size=max_size, on_full=on_full, **options)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_megabytes_of_lines_are_stored_exactly_in_few_large_chunks(claimed):
    lines = b"".join(b"%08d the quick brown fox \xe2\x82\xac jumps\n" % index for index in range(100_000))
    log = writer(claimed)
    for at in range(0, len(lines), 4096):  # as a pipe hands them over
        log.write(lines[at:at + 4096])
    log.close()
    assert log_of(claimed) == (0, lines, len(lines))
    stored = chunks(claimed)
    assert len(stored) <= len(lines) // FLUSH_BYTES + 2  # a statement per FLUSH_BYTES, not per line
    assert all(start < end for start, end, _ in stored)
    assert [end for _, end, _ in stored][-1] == len(lines)
    assert all(stored[index][1] == stored[index + 1][0] for index in range(len(stored) - 1))  # contiguous


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_large_chunks_of_text_are_compressed_and_binary_ones_kept_as_they_are(claimed):
    text = b"".join(b"%08d scanned /library/roms/gba ok\n" % index for index in range(30_000))  # ~1 MB
    noise = os.urandom(300_000)
    log = writer(claimed)
    for part in (text, noise, b"tail\n"):
        log.write(part)
        log.flush()
    log.close()
    assert log_of(claimed) == (0, text + noise + b"tail\n", len(text) + len(noise) + 5)
    compressed = list(RunLogChunk.objects.filter(run=claimed).order_by("end").values_list("compressed", flat=True))
    assert compressed == [True, False, False]
    across = selectors.read_log(claimed.pk, offset=len(text) - 3, limit=10).data  # from a compressed chunk on
    assert len(across) >= 7 and (text[-3:] + noise[:7]).startswith(across)  # (less an unfinished character)


@pytest.mark.django_db
def test_a_chunk_stored_zlib_compressed_before_lz4_still_reads(claimed):
    text = b"".join(b"%08d scanned /library/roms/gba ok\n" % index for index in range(3_000))
    RunLogChunk.objects.create(run=claimed, start=0, end=len(text), data=zlib.compress(text, 1), compressed=True)
    assert log_of(claimed) == (0, text, len(text))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_small_flushes_grow_the_last_chunk_until_it_is_large(claimed):
    log = writer(claimed)
    line = b"x" * 999 + b"\n"
    for _ in range(3):
        log.write(line)
        log.flush()
    assert chunks(claimed) == [(0, 3000, 3000)]
    for _ in range(COALESCE_BYTES // len(line)):
        log.write(line)
        log.flush()
    log.close()
    stored = chunks(claimed)
    assert len(stored) == 2 and stored[0][2] <= COALESCE_BYTES and stored[-1][1] == 3000 + COALESCE_BYTES // 1000 * 1000
    assert log_of(claimed)[1] == line * (3 + COALESCE_BYTES // len(line))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_drop_old_deletes_chunks_behind_the_cut_and_shows_the_one_it_falls_in_from_it(claimed):
    log = writer(claimed, max_size=2500)
    for index in range(4):
        log.write(bytes([65 + index]) * 1000)
        log.write(b"\n" * (COALESCE_BYTES + 1))  # chunks of their own
        log.flush()
    log.close()
    size = 4 * (1001 + COALESCE_BYTES)
    dropped, kept, total = log_of(claimed)
    assert (dropped, total, len(kept)) == (size - 2500, size, 2500)
    assert kept == (b"\n" * (COALESCE_BYTES + 1) + b"D" * 1000 + b"\n" * (COALESCE_BYTES + 1))[-2500:]
    stored = chunks(claimed)
    assert stored[0][0] == size - 2500 and len(stored) <= 2  # the older chunks are gone
    piece = selectors.read_log(claimed.pk, offset=0)
    assert piece.as_text().startswith(f"[taskdeck: {size - 2500:,} bytes dropped]\n")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_kill_task_asks_a_running_run_to_stop_once_and_calls_back(claimed):
    called = threading.Event()
    log = writer(claimed, max_size=10, on_full=KILL_TASK, on_overflow=called.set)
    log.write(b"0123456789 and on")
    log.flush()
    claimed.refresh_from_db()
    assert called.is_set() and log.overflowed
    assert (claimed.status, claimed.stop_requested) == (RunStatus.RUNNING, StopRequest.OVERFLOW)
    log.close()
    assert log_of(claimed)[1] == b"0123456789\n" + FULL_KILL + b"[taskdeck: 7 bytes dropped]\n"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_flushes_wake_log_streams_with_throttled_events_and_the_last_one_always(claimed, clock):
    log = writer(claimed)
    for index in range(5):
        log.write(b"line %d\n" % index)
        log.flush()  # the clock stands still: only the first flush announces at once
    events = Event.objects.filter(run_id=claimed.pk, name=EventName.LOG)
    assert [event.data["size"] for event in events] == [7]
    log.close()
    assert [event.data["size"] for event in events.order_by("id")] == [7, 35]
    assert events.first().data["task_id"] == claimed.task_id


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_that_writes_nothing_costs_no_statement(claimed, django_assert_num_queries):
    log = writer(claimed)
    with django_assert_num_queries(0):
        log.flush()
        log.close()
    assert log_of(claimed) == (0, b"", 0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_writers_in_several_threads_lose_nothing(claimed):
    log = writer(claimed)
    start = threading.Barrier(4)

    def write(mark: bytes) -> None:
        start.wait()
        for _ in range(2000):
            log.write(mark * 100)

    threads = [threading.Thread(target=write, args=(mark,)) for mark in (b"a", b"b", b"c", b"d")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    _, data, size = log_of(claimed)
    assert size == len(data) == 4 * 2000 * 100
    assert all(data.count(mark) == 2000 * 100 for mark in (b"a", b"b", b"c", b"d"))
