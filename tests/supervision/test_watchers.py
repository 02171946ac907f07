"""supervision/watchers.py: which changes count, when they are due, and the changed paths a target
gets, driven change by change with made-up monotonic seconds (no files, no database)."""
from __future__ import annotations

import pytest

from tasks_app.supervision import watchers
from tasks_app.supervision.watchers import ChangeFilter, Pending, summarise

ROOT = "/srv/library"


def accepts(kind: str = "created", path: str = "/srv/library/gba/game.rom", **settings) -> bool:
    settings = {"events": ["created", "modified", "deleted", "moved"], "patterns": [], "ignore_patterns": [],
                **settings}
    return ChangeFilter.of(settings).accepts(kind, path, root=ROOT)


class TestChangeFilter:
    def test_no_pattern_takes_every_path(self):
        assert accepts(path="/srv/library/anything") and accepts(path=ROOT)

    @pytest.mark.parametrize(("path", "taken"), [
        ("/srv/library/gba/game.rom", True),
        ("/srv/library/game.ZIP", False),  # case counts, as on the file system
        ("/srv/library/gba/game.zip", True),
        ("/srv/library/gba/notes.txt", False),
    ])
    def test_patterns_match_the_name(self, path, taken):
        assert accepts(path=path, patterns=["*.rom", "*.zip"]) is taken

    def test_ignore_patterns_win_and_take_whole_folders(self):
        ignore = ["*.tmp", ".git"]
        assert not accepts(path="/srv/library/gba/game.rom.tmp", patterns=["*.rom*"], ignore_patterns=ignore)
        assert not accepts(path="/srv/library/.git/objects/ab/cdef", ignore_patterns=ignore)
        assert accepts(path="/srv/library/gba/game.rom", patterns=["*.rom*"], ignore_patterns=ignore)

    def test_a_pattern_with_a_slash_matches_the_path_below_the_watched_folder(self):
        assert accepts(path="/srv/library/gba/game.rom", patterns=["gba/*"])
        assert not accepts(path="/srv/library/n64/game.rom", patterns=["gba/*"])
        assert accepts(path="/srv/library/gba/deep/game.rom", patterns=["gba/*.rom"])  # * crosses slashes
        assert not accepts(path="/srv/library/cache/x/y.bin", ignore_patterns=["cache/*"])

    @pytest.mark.parametrize(("events", "kinds"), [
        (["created"], {"created"}),
        (["modified"], {"modified"}),
        (["deleted"], {"deleted"}),
        (["moved"], {"created", "deleted"}),  # a move arrives as its two halves
        (["created", "modified"], {"created", "modified"}),
    ])
    def test_events_choose_the_kinds_of_change(self, events, kinds):
        assert {kind for kind in ("created", "modified", "deleted") if accepts(kind, events=events)} == kinds


class TestPending:
    def test_changes_are_due_a_quiet_delay_after_the_last_one(self):
        pending = Pending(quiet_delay=5)
        assert pending.due_at() is None and not pending.due(1000)
        assert pending.add(["/a", "/b"], now=100) == 2
        assert pending.add(["/b", "/c"], now=103) == 1  # /b again: still one path, but the quiet starts again
        assert pending.count == 3 and pending.due_at() == 108
        assert not pending.due(107.9) and pending.due(108)

    def test_firing_forgets_them(self):
        pending = Pending(quiet_delay=5)
        pending.add(["/a"], now=0)
        pending.fired()
        assert (pending.count, pending.due_at(), pending.changed_paths()) == (0, None, [])

    def test_a_refusal_keeps_them_and_tries_again_later_and_new_changes_start_the_quiet_again(self):
        pending = Pending(quiet_delay=2)
        pending.add(["/a"], now=0)
        pending.refused(now=2, retry_after=1)
        assert pending.count == 1 and pending.due_at() == 3
        pending.add(["/b"], now=2.5)
        assert pending.due_at() == 4.5 and pending.changed_paths() == ["/a", "/b"]
        pending.fired()
        pending.add(["/c"], now=10)
        assert pending.due_at() == 12  # a refusal once is forgotten with the changes it held

    def test_past_the_paths_it_remembers_it_counts_changes_and_keeps_their_folders(self, monkeypatch):
        monkeypatch.setattr(watchers, "MAX_REMEMBERED", 2)
        pending = Pending(quiet_delay=0)
        pending.add(["/lib/a/1", "/lib/a/2", "/lib/b/3", "/lib/c/4", "/lib/c/5"], now=0)
        assert pending.count == 5
        assert pending.changed_paths() == ["/lib/a/1", "/lib/a/2", "/lib/b/", "/lib/c/"]

    def test_what_a_previous_owner_left_is_due_a_quiet_delay_after_it_is_restored(self):
        pending = Pending(quiet_delay=5)
        pending.restore(count=1200, paths=["/lib/gba/", "/lib/n64/x.rom"], now=50)
        assert pending.count == 1200 and pending.due_at() == 55
        pending.add(["/lib/psx/y.rom"], now=52)
        assert pending.count == 1201
        assert pending.changed_paths() == ["/lib/gba/", "/lib/n64/x.rom", "/lib/psx/y.rom"]
        pending.restore(count=0, paths=[], now=60)
        assert pending.count == 1201


class TestSummarise:
    def test_paths_that_fit_are_given_as_they_are_sorted(self):
        assert summarise(["/b/2", "/a/1", "/b/2"]) == ["/a/1", "/b/2"]
        assert summarise([]) == []

    def test_more_than_the_limit_are_cut_to_their_common_folders(self):
        paths = [f"/srv/library/{platform}/game-{number}.rom" for platform in ("gba", "n64") for number in range(600)]
        paths.append("/srv/library/catalogue.json")
        assert summarise(paths) == ["/srv/library/catalogue.json", "/srv/library/gba/", "/srv/library/n64/"]

    def test_the_deepest_cut_that_fits_is_kept(self):
        paths = [f"/lib/{folder}/{sub}/f{number}" for folder in range(3) for sub in range(4) for number in range(2)]
        assert summarise(paths, limit=12) == [f"/lib/{folder}/{sub}/" for folder in range(3) for sub in range(4)]
        assert summarise(paths, limit=11) == ["/lib/0/", "/lib/1/", "/lib/2/"]
        assert summarise(paths, limit=1) == ["/lib/"]

    def test_the_text_fits_a_parameter_value(self):
        long = [f"/srv/{'x' * 150}/{number:04d}" for number in range(1000)]
        lines = summarise(long)
        assert lines == [f"/srv/{'x' * 150}/"]
        assert summarise(long, max_chars=10**9) == sorted(long)

    def test_a_ten_thousand_file_burst_gives_at_most_1000_lines(self):
        paths = [f"/srv/library/d{folder:03d}/f{number:02d}.bin" for folder in range(100) for number in range(100)]
        lines = summarise(paths)
        assert len(lines) == 100 and lines[0] == "/srv/library/d000/"
        assert len("\n".join(lines)) <= watchers.MAX_VALUE_LENGTH

    def test_at_worst_everything_is_the_root(self):
        assert summarise([f"/{number}" for number in range(5)], limit=2) == ["/"]
