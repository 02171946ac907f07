#!/usr/bin/env python
"""The run log store's write path: MB/s of a child's stdout captured into a run's log.

Run from the project root::

    .venv/bin/python bench/logs.py [--megabytes 200] [--repeats 3]
    scripts/with-postgres .venv/bin/python bench/logs.py --megabytes 200

A child process (``python -c``) writes ``--megabytes`` of text lines to a pipe, as fast as it can;
this process reads the pipe (``os.read`` of 64 KiB, what a command run's reader thread does) and
hands every read to a ``LogWriter`` (execution/output.py) of a claimed run, then closes it. The
figure is the bytes over the time from the child's start to the writer's close (the last chunk
committed). Side by side, on the same machine and run:

* ``floor``: the same child with its stdout a file (``> file``): what writing the lines costs;
* ``pipe->file``: the same child, this process reading the pipe into a file with 64 KiB reads
  (the shape of supervisord's ``stdout_logfile`` capture, without its event loop);
* ``store``: into the run log, capped at ``--cap`` MiB with ``drop_old`` (default 100 MiB, API.md's
  default: past it, every flush also deletes the oldest chunks);
* ``store, no cap``: the same with a cap above the output;
* ``supervisord`` (with ``--supervisord PATH``, a supervisord installed in an environment of the
  bench's own, never the project's): the same child as a supervisord program with
  ``stdout_logfile``, from supervisord's start to the file holding every byte.

The database is the one DATABASE_URL names (a fresh SQLite file in a temporary folder when unset,
with config.settings' PRAGMAs); its tables are made by ``migrate``. The peak RSS of this process
is printed too. Medians of ``--repeats`` repetitions.

Measured when the store was written (200 MB of ~75-byte lines, medians of 3, 2 cores shared with
other sessions at a load average of 5 to 7, so figures moved by a third between runs): SQLite
77-82 MB/s (large chunks zlib-compressed; 46-97 MB/s raw), supervisord 109-121 MB/s beside it;
PostgreSQL (lz4 column, binary parameter) 52-105 MB/s, supervisord 78 MB/s beside the slower
run. This process used ~1.0 s of CPU per 200 MB (half of it compressing), supervisord ~0.45 s:
on a busy machine that CPU is what keeps the store behind. Peak RSS 72 MB, ~50 MB anonymous.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.throughput import BenchError, die_with_parent  # noqa: E402 (after the path above)

# Lines made once, a block of 10,000 (~750 KB), written again and again: the child costs next to
# nothing, so the figures are the capture's own.
CHILD = """
import sys
block = b"".join(b"2025-01-01 03:00:00 INFO worker: scanned /library/roms/gba/%08d.rom ok\\n" % index
                 for index in range(10_000))
total = int(sys.argv[1])
out = sys.stdout.buffer
while total > 0:
    out.write(block[:total])
    total -= len(block)
out.flush()
"""
READ = 64 * 1024


def child(total: int, stdout) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(total)], stdout=stdout)


def floor(total: int, folder: Path) -> float:
    began = time.perf_counter()
    with (folder / "floor.log").open("wb") as handle:
        child(total, handle).wait()
    return time.perf_counter() - began


def pipe_to_file(total: int, folder: Path) -> float:
    began = time.perf_counter()
    process = child(total, subprocess.PIPE)
    with (folder / "pipe.log").open("wb") as handle:
        while data := os.read(process.stdout.fileno(), READ):
            handle.write(data)
    process.wait()
    return time.perf_counter() - began


SUPERVISORD_CONF = """
[supervisord]
logfile={folder}/supervisord.log
pidfile={folder}/supervisord.pid
childlogdir={folder}
nodaemon=true
"""
FLOOD_PROGRAM = """
[program:flood]
command={python} {folder}/child.py {total}
stdout_logfile={folder}/supervised.log
stdout_logfile_maxbytes=0
autorestart=false
startsecs=0
"""


class Supervisord:
    """A supervisord (``executable``, from an environment of the bench's own) in the foreground,
    with ``programs`` (its ``[program:x]`` sections); its configuration, log, pid file and the
    programs' AUTO logs in ``folder``. As a context manager it is stopped on the way out (SIGTERM:
    it stops its programs, then exits); it gets SIGTERM too if the process that started it dies."""

    name = "supervisord"

    def __init__(self, executable: str, folder: Path, programs: str) -> None:
        self.executable = executable
        self.folder = folder
        self.programs = programs
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Supervisord:
        (self.folder / "supervisord.conf").write_text(SUPERVISORD_CONF.format(folder=self.folder) + self.programs)
        self.process = subprocess.Popen([self.executable, "-c", str(self.folder / "supervisord.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=die_with_parent if sys.platform.startswith("linux") else None)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` s (its programs may then
        outlive it: a caller that started long-running ones checks)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = self.process.returncode if self.process else None
            raise BenchError(f"supervisord exited (code {code}); its log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join((self.folder / "supervisord.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def supervised(total: int, folder: Path, supervisord: str) -> float:
    (folder / "child.py").write_text(CHILD)
    log = folder / "supervised.log"
    log.unlink(missing_ok=True)
    began = time.perf_counter()
    with Supervisord(supervisord, folder, FLOOD_PROGRAM.format(folder=folder, python=sys.executable, total=total)):
        while not log.exists() or log.stat().st_size < total:
            time.sleep(0.005)
        return time.perf_counter() - began


def store(total: int, *, cap: int) -> tuple[float, int]:
    from tasks_app import services
    from tasks_app.execution.output import LogWriter
    from tasks_app.models import LogOnFull, Run, RunLogChunk, RunTrigger, Task
    from tasks_app import clock

    task, _ = Task.objects.get_or_create(id="bench-logs", defaults={"title": "Bench logs", "kind": "python",
                                                                    "callable": "bench.noop.noop", "timeout": 3600})
    run = Run.objects.create(task=task, trigger=RunTrigger.MANUAL, created_at=clock.now())
    run = services.claim_run(run.pk)
    began = time.perf_counter()
    writer = LogWriter(run.pk, task_id=task.pk, max_size=cap, on_full=LogOnFull.DROP_OLD)
    process = child(total, subprocess.PIPE)
    while data := os.read(process.stdout.fileno(), READ):
        writer.write(data)
    process.wait()
    writer.close()
    seconds = time.perf_counter() - began
    chunks = RunLogChunk.objects.filter(run=run).count()
    Run.objects.filter(pk=run.pk).delete()
    return seconds, chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=200)
    parser.add_argument("--cap", type=float, default=100, help="log_max_size, MiB (drop_old)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--supervisord", default="", help="a supervisord executable, to measure it too")
    parser.add_argument("--flush-kib", type=int, default=0,
                        help="try another flush size (output.FLUSH_BYTES, MAX_PENDING 4 times it)")
    args = parser.parse_args()
    total = int(args.megabytes * 1_000_000)
    folder = Path(tempfile.mkdtemp(prefix="taskdeck-bench-logs-"))
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", f"sqlite:///{folder / 'bench.sqlite3'}")
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()
    from django.db import connection

    if args.flush_kib:
        from tasks_app.execution import output

        output.FLUSH_BYTES, output.MAX_PENDING = args.flush_kib * 1024, 4 * args.flush_kib * 1024

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    figures: dict[str, list[float]] = {"floor": [], "pipe->file": [], "store": [], "store, no cap": []}
    if args.supervisord:
        figures["supervisord"] = []
    chunks = {}
    for _ in range(args.repeats):
        figures["floor"].append(floor(total, folder))
        figures["pipe->file"].append(pipe_to_file(total, folder))
        if args.supervisord:
            figures["supervisord"].append(supervised(total, folder, args.supervisord))
        seconds, chunks["store"] = store(total, cap=int(args.cap * 1024 * 1024))
        figures["store"].append(seconds)
        seconds, chunks["store, no cap"] = store(total, cap=total * 2)
        figures["store, no cap"].append(seconds)
    print(f"database: {connection.vendor}; {args.megabytes:g} MB of lines, cap {args.cap:g} MiB drop_old; "
          f"medians of {args.repeats}")
    for name, seconds in figures.items():
        median = statistics.median(seconds)
        extra = f"  ({chunks[name]} chunks kept)" if name in chunks else ""
        print(f"  {name:14s} {total / median / 1e6:8.1f} MB/s  {median:6.2f} s{extra}")
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    print(f"  peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
          f"({rss_before:.0f} MB before the first capture); now {status['RssAnon'].strip()} anonymous, "
          f"{status['RssFile'].strip()} file-backed (mapped files, SQLite's mmap of its database among them)")


if __name__ == "__main__":
    main()
