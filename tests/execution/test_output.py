"""execution/output.py: the capped output buffer on its own (no database: it only counts bytes)."""
import threading

from tasks_app.execution.output import OutputBuffer, OutputWrite


def landed(buffer: OutputBuffer) -> OutputWrite | None:
    """Take what is pending and report it stored, as a flush that succeeded does."""
    write = buffer.take()
    if write is not None:
        buffer.landed(write)
    return write


def test_nothing_pending_takes_nothing_and_empty_text_is_not_pending():
    buffer = OutputBuffer(max_bytes=10)
    assert buffer.take() is None
    buffer.write("")
    assert buffer.take() is None


def test_text_under_the_cap_is_added_to_the_end():
    buffer = OutputBuffer(max_bytes=10, kept="abc")
    buffer.write("de")
    buffer.write("f")
    assert buffer.take() == OutputWrite(added="def", kept="abcdef", dropped=0, truncated=False)


def test_text_that_just_fills_the_cap_drops_nothing():
    buffer = OutputBuffer(max_bytes=10, kept="01234")
    buffer.write("56789")
    assert landed(buffer) == OutputWrite(added="56789", kept="0123456789", dropped=0, truncated=False)


def test_past_the_cap_the_oldest_bytes_go_and_are_counted():
    buffer = OutputBuffer(max_bytes=10, kept="0123456789")
    buffer.write("abc")
    assert landed(buffer) == OutputWrite(added="abc", kept="3456789abc", dropped=3, truncated=True)
    buffer.write("defg")
    assert landed(buffer) == OutputWrite(added="defg", kept="789abcdefg", dropped=7, truncated=True)
    assert (buffer.kept, buffer.dropped) == ("789abcdefg", 7)


def test_a_write_longer_than_the_cap_keeps_only_its_own_tail():
    buffer = OutputBuffer(max_bytes=4, kept="ab", dropped=5)
    buffer.write("0123456789")
    assert landed(buffer) == OutputWrite(added="0123456789", kept="6789", dropped=5 + 8, truncated=True)


def test_the_cap_counts_utf8_bytes_and_a_character_cut_in_two_goes_whole():
    buffer = OutputBuffer(max_bytes=6, kept="é")  # 2 bytes
    buffer.write("€€")  # 6 bytes: 8 in all, the cut falls after é's 2 bytes
    assert landed(buffer) == OutputWrite(added="€€", kept="€€", dropped=2, truncated=True)
    buffer.write("a")  # 7 bytes: cutting 1 splits the first €, so all 3 of its bytes go
    assert landed(buffer) == OutputWrite(added="a", kept="€a", dropped=5, truncated=True)
    assert len(buffer.kept.encode()) + buffer.dropped == 2 + 6 + 1  # every byte written, kept or counted


def test_a_buffer_starts_from_what_its_run_stored():
    buffer = OutputBuffer(max_bytes=8, kept="stored", dropped=40)
    buffer.write("+new")
    assert buffer.take() == OutputWrite(added="+new", kept="ored+new", dropped=42, truncated=True)


def test_text_no_database_takes_is_made_storable_as_it_is_written():
    buffer = OutputBuffer(max_bytes=100)
    buffer.write("nul\x00 and caf" + b"\xe9".decode("utf-8", "surrogateescape"))
    assert buffer.take().added == "nul\\x00 and caf\\udce9"


def test_nothing_changes_until_a_write_lands():
    buffer = OutputBuffer(max_bytes=10, kept="0123456789")
    buffer.write("abc")
    write = buffer.take()
    assert (buffer.kept, buffer.dropped) == ("0123456789", 0)
    buffer.landed(write)
    assert (buffer.kept, buffer.dropped) == ("3456789abc", 3)


def test_a_write_put_back_is_taken_again_before_what_came_meanwhile():
    buffer = OutputBuffer(max_bytes=100, kept="start ")
    buffer.write("one ")
    refused = buffer.take()
    buffer.write("two")
    buffer.put_back(refused)
    assert buffer.take() == OutputWrite(added="one two", kept="start one two", dropped=0, truncated=False)
    assert buffer.take() is None


def test_writers_in_several_threads_lose_nothing():
    buffer = OutputBuffer(max_bytes=1_000_000)
    start = threading.Barrier(4)

    def writer(mark: str) -> None:
        start.wait()
        for _ in range(1000):
            buffer.write(mark)

    threads = [threading.Thread(target=writer, args=(mark,)) for mark in "abcd"]
    for thread in threads:
        thread.start()
    taken = []
    while any(thread.is_alive() for thread in threads):
        taken.append(landed(buffer))
    for thread in threads:
        thread.join()
    taken.append(landed(buffer))
    text = "".join(write.added for write in taken if write is not None)
    assert sorted(set(text)) == ["a", "b", "c", "d"] and all(text.count(mark) == 1000 for mark in "abcd")
    assert buffer.kept == text
