#!/usr/bin/env python
"""File watchers against watchmedo (watchdog's own command-line tool) on one large tree.

Run from the project root::

    .venv/bin/python bench/watchers.py --watchmedo var/bench-venv/bin/watchmedo [--repeats 3]
    .venv/bin/python bench/watchers.py --watchmedo ... --mode polling   # both sides polling

``--watchmedo`` names a watchmedo installed in an environment of the bench's own (``make bench``
makes one in var/), never the project's. A tree of ``--files`` files in ``--folders`` folders
(100,000 in 1,000) is made once in a temporary folder. Each repetition measures both sides, which
alternate going first:

* **Taskdeck**: a child process on a fresh SQLite database (a copy of a migrated template)
  declares a python task and a disabled watcher of the whole tree triggering it (``quiet_delay``
  ``--quiet-delay``; the target's ``on_overlap = "queue"``, so every trigger makes a run, which
  no worker takes: its row is what is measured), and starts a real ``manage.py supervisor``. Once
  its heartbeat is in, after a second: ``--idle-seconds`` of its CPU and its RSS (VmRSS) with no
  watcher; then the watcher is enabled. *Start*:
  from the supervisor's ``taken`` event to its ``watching`` event (the stamps it writes as it
  takes the watcher and once inotify, or polling, is in place on the whole tree); *enable to
  watching*: from the enable to the row ``watching``, seen from outside every 10 ms (it
  includes up to one ``TASKDECK_SUPERVISOR_INTERVAL`` before the supervisor looks).
* **watchmedo**: ``watchmedo shell-command --recursive --wait --command '<stamp>' TREE``, which
  runs the command once per event (watchdog has no quiet delay: ``--wait`` runs them one after the
  other rather than all at once; ``--drop`` would lose changes). *Start*: from just before its
  process starts to the first stamp of a probe file written into the last folder every 20 ms
  (Python's start and imports included, as Django's are not in Taskdeck's figure).

Then, on each side: ``--idle-seconds`` of nothing happening: the process's CPU (utime + stime) as
a share of one core and its RSS at the end (VmRSS; VmHWM its peak). Then ``--bursts`` bursts of
``--burst-files`` new files each, in random folders, written as fast as one thread can, with a
random pause of up to 0.5 s after each burst has been answered. *Latency*, Taskdeck: from the
burst's last write to the target's run being created (its ``created_at``, the supervisor's
clock: one host, one clock) minus ``quiet_delay``; every burst must give exactly one run.
watchmedo: from the last write to the stamp of the command for the last file written (its first
reaction to it), and to the stamp of its last command for the burst (all answered); how many
commands a burst cost. Last, one burst of ``--big-burst`` files (10,000 in 100 folders): the same
figures, and Taskdeck's runs for it (exactly one); watchmedo gets ``PEER_BIG_TIMEOUT`` to answer it
(infinity past that), and the commands it ran by then are counted. Then SIGTERM.

The summary is the median over repetitions of each repetition's figure (latency p50 and p95 are
each repetition's percentiles). Goals (issue 16): the supervisor's RSS under 150 MB watching the
tree; latency p95 at most 250 ms.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: bench/ is sys.path[0], the project is not

from bench.process import load_average, met  # noqa: E402 (after the path above)
from bench.services import idle_usage, memory  # noqa: E402
from bench.throughput import (  # noqa: E402
    BenchError, Cluster, Databases, definition, die_with_parent, percentile, run_child, side_env, wait_for,
)

TARGET = "bench-target"
WATCHER = "bench-watch"
LABELS = {"taskdeck": "Taskdeck", "peer": "watchmedo"}
GOAL_RSS_MB = 150.0
GOAL_P95_MS = 250.0
ANSWER_TIMEOUT = 60.0
PEER_BIG_TIMEOUT = 600.0
"""watchmedo runs a command per event, one after the other: 10,000 files are ~50,000 commands."""


# --- The tree -------------------------------------------------------------------------------------


def make_tree(tree: Path, *, files: int, folders: int) -> None:
    """``files`` small files spread over ``folders`` folders (once; kept between repetitions)."""
    marker = tree / ".made"
    if marker.exists():
        return
    per_folder = -(-files // folders)
    for folder in range(folders):
        path = tree / f"d{folder:04d}"
        path.mkdir(parents=True, exist_ok=True)
        for number in range(min(per_folder, files - folder * per_folder)):
            (path / f"f{number:04d}.bin").write_bytes(b"x")
    marker.write_text("made by bench/watchers.py\n")


def remove(paths: list[Path]) -> None:
    """The files a side's bursts (or probes) added, so every repetition starts on the same tree."""
    for path in paths:
        path.unlink(missing_ok=True)


def burst(tree: Path, rng: random.Random, *, name: str, count: int, folders: int) -> tuple[list[Path], float]:
    """``count`` new files in random folders (the big burst: 100 per folder), written as fast as
    one thread can; returns them and the wall-clock time of the last write."""
    if count > 1000:
        chosen = [tree / f"d{(number // 100) % folders:04d}" for number in range(count)]
    else:
        chosen = [tree / f"d{rng.randrange(folders):04d}" for _ in range(count)]
    paths = [folder / f"{name}-{number:05d}.bin" for number, folder in enumerate(chosen)]
    for path in paths:
        path.write_bytes(b"y")
    return paths, time.time()


# --- Taskdeck's child -----------------------------------------------------------------------------


def taskdeck_main(args: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    from tasks_app import services
    from tasks_app.definitions.validate import build_definition
    from tasks_app.models import DefinitionSource, Event, EventName, Heartbeat, HeartbeatRole, Run, Watcher

    rng = random.Random(args.seed)
    tree = Path(args.tree)
    services.sync_definitions([
        definition(TARGET, callable="bench.noop.noop", parameters=[{"key": "changed_paths"}]),
        build_definition(WATCHER, {"kind": "watcher", "enabled": False, "paths": [str(tree)],
                                   "quiet_delay": args.quiet_delay, "target": TARGET}, source=DefinitionSource.FILE),
    ])
    env = dict(os.environ)
    if args.mode == "polling":
        from tasks_app.platform.filewatch import filesystem_of

        env["TASKDECK_WATCHER_POLLED_FILESYSTEMS"] = filesystem_of(str(tree))
    problems: list[str] = []

    def runs() -> int:
        return Run.objects.filter(task_id=TARGET).count()

    with Cluster(Path(args.log), command="supervisor", env=env) as supervisor:
        assert supervisor.process is not None
        pid = supervisor.process.pid
        wait_for(lambda: Heartbeat.objects.filter(role=HeartbeatRole.SUPERVISOR, pid=pid).exists(), timeout=60,
                 interval=0.05, cluster=supervisor, what="the supervisor's first look")
        time.sleep(1.0)
        before = idle_usage(pid, args.idle_seconds, others=[])
        enabled_at = time.time()
        services.set_enabled(WATCHER, enabled=True)
        row = wait_for(lambda: Watcher.objects.filter(task_id=WATCHER, state="watching").first(), timeout=120,
                       interval=0.01, cluster=supervisor, what="the watcher to watch the tree")
        watching_at = time.time()
        messages = list(Event.objects.filter(name=EventName.WATCHER_UPDATED, task_id=WATCHER).order_by("id")
                        .values_list("data__message", "data__timestamp"))
        taken = next(stamp for message, stamp in messages if message.startswith("taken by"))
        # Watching already when it was taken, on a tree small enough: then the one event says both.
        watching = next((stamp for message, stamp in messages if message.startswith("watching")), taken)
        start_s = (datetime.fromisoformat(watching) - datetime.fromisoformat(taken)).total_seconds()
        time.sleep(1.0)
        idle = idle_usage(pid, args.idle_seconds, others=[])
        latencies, written = [], []
        for number in range(args.bursts):
            count = runs()
            paths, last = burst(tree, rng, name=f"t{args.repetition}-{number}", count=args.burst_files,
                                folders=args.folders)
            written += paths
            wait_for(lambda: runs() > count, timeout=ANSWER_TIMEOUT, interval=0.005, cluster=supervisor,
                     what=f"the run of burst {number}")
            run = Run.objects.filter(task_id=TARGET).order_by("-created_at").first()
            latencies.append((run.created_at.timestamp() - last - args.quiet_delay) * 1000)
            time.sleep(rng.uniform(0, 0.5))
        count = runs()
        paths, last = burst(tree, rng, name=f"t{args.repetition}-big", count=args.big_burst, folders=args.folders)
        written += paths
        wait_for(lambda: runs() > count, timeout=ANSWER_TIMEOUT, interval=0.005, cluster=supervisor,
                 what="the run of the big burst")
        run = Run.objects.filter(task_id=TARGET).order_by("-created_at").first()
        big_latency = (run.created_at.timestamp() - last - args.quiet_delay) * 1000
        time.sleep(args.quiet_delay + 1.5)  # any second run for a burst would be there by now
        after = memory(pid)
        total = runs()
        if total != args.bursts + 1:
            problems.append(f"{total} runs for {args.bursts + 1} bursts")
        big_lines = len(run.parameters.get("changed_paths", "").splitlines())
        supervisor.stop(grace=30)
        if supervisor.process.returncode != 0:
            problems.append(f"the supervisor exited {supervisor.process.returncode} on SIGTERM")
    remove(written)
    return {"start_s": start_s, "enable_to_watching_s": watching_at - enabled_at, "mode": row.paths[0]["mode"],
            "rss_before_mb": before["rss_mb"], "cpu_before_percent": before["cpu_percent"], "rss_idle_mb": idle["rss_mb"], "peak_rss_mb": after["peak_rss_mb"],
            "rss_after_mb": after["rss_mb"], "idle_cpu_percent": idle["cpu_percent"], "latencies_ms": latencies,
            "big_latency_ms": big_latency, "big_runs": total - args.bursts, "big_changed_paths_lines": big_lines,
            "problems": problems}


# --- watchmedo --------------------------------------------------------------------------------------


def peer_measure(args: argparse.Namespace, workdir: Path, repetition: int, rng: random.Random) -> dict[str, Any]:
    tree = Path(args.tree)
    stamps = workdir / f"watchmedo-stamps-{repetition}"
    stamps.write_text("")
    command = f'echo "$(date +%s.%N) ${{watch_event_type}} ${{watch_src_path}}" >> {shlex.quote(str(stamps))}'
    argv = [args.watchmedo, "shell-command", "--recursive", "--wait", "--command", command, str(tree)]
    if args.mode == "polling":
        argv[2:2] = ["--debug-force-polling", "--interval", "2"]
    written: list[Path] = []
    log = open(args.log, "ab")  # noqa: SIM115 (closed below, whatever happens)
    began = time.time()
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=die_with_parent)
    watched = _Process(process, Path(args.log))
    try:
        probe = tree / f"d{args.folders - 1:04d}" / f"probe-{repetition}"
        number = 0

        def probed() -> bool:
            nonlocal number
            number += 1
            written.append(probe.with_name(f"{probe.name}-{number}.txt"))
            written[-1].write_text("p")
            return f"{probe.name}-" in stamps.read_text()

        wait_for(probed, timeout=120, interval=0.02, cluster=watched, what="watchmedo to see a probe file")
        start_s = time.time() - began
        time.sleep(1.0)
        settle(stamps, quiet=1.0)
        idle = idle_usage(process.pid, args.idle_seconds, others=[])
        reactions, answered, commands = [], [], []
        for number in range(args.bursts):
            seen = _stamp_count(stamps)
            paths, last = burst(tree, rng, name=f"w{repetition}-{number}", count=args.burst_files,
                                folders=args.folders)
            written += paths
            lines = answer(stamps, paths[-1], watched, timeout=ANSWER_TIMEOUT)
            reactions.append((lines.first - last) * 1000)
            answered.append((lines.last - last) * 1000)
            commands.append(_stamp_count(stamps) - seen)
            time.sleep(rng.uniform(0, 0.5))
        seen = _stamp_count(stamps)
        paths, last = burst(tree, rng, name=f"w{repetition}-big", count=args.big_burst, folders=args.folders)
        written += paths
        lines = answer(stamps, paths[-1], watched, timeout=PEER_BIG_TIMEOUT)
        after = memory(process.pid)
        return {"start_s": start_s, "rss_idle_mb": idle["rss_mb"], "peak_rss_mb": after["peak_rss_mb"],
                "rss_after_mb": after["rss_mb"], "idle_cpu_percent": idle["cpu_percent"],
                "reaction_ms": reactions, "answered_ms": answered, "commands": commands,
                "big_reaction_ms": (lines.first - last) * 1000, "big_answered_ms": (lines.last - last) * 1000,
                "big_commands": _stamp_count(stamps) - seen, "problems": []}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
        remove(written)


class _Process:
    """watchmedo as ``wait_for`` watches it."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log
        self.name = "watchmedo"

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"watchmedo exited ({self.process.returncode}); its log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class _Answer:
    def __init__(self, first: float, last: float) -> None:
        self.first, self.last = first, last


def _stamps(stamps: Path) -> list[tuple[float, str]]:
    text = stamps.read_text(errors="replace")
    found = []
    for line in text[:text.rfind("\n") + 1].splitlines():
        moment, _, rest = line.partition(" ")
        try:
            found.append((float(moment), rest))
        except ValueError:
            continue
    return found


def _stamp_count(stamps: Path) -> int:
    return len(_stamps(stamps))


def settle(stamps: Path, *, quiet: float) -> None:
    """Until no command has run for ``quiet`` seconds (the probes' commands done)."""
    while True:
        count = _stamp_count(stamps)
        time.sleep(quiet)
        if _stamp_count(stamps) == count:
            return


def answer(stamps: Path, last_path: Path, watched: _Process, *, timeout: float) -> _Answer:
    """The stamp of the first command for ``last_path``, then of the last command once none has
    run for a second (the burst answered); infinity for what did not come within ``timeout``."""
    try:
        first = wait_for(lambda: next((moment for moment, rest in _stamps(stamps) if rest.endswith(f" {last_path}")),
                                      None), timeout=timeout, interval=0.005, cluster=watched,
                         what=f"watchmedo's command for {last_path.name}")
    except BenchError:
        watched.check_alive()
        return _Answer(math.inf, math.inf)  # still busy with the burst's earlier commands
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = _stamp_count(stamps)
        time.sleep(1.0)
        if _stamp_count(stamps) == count:
            break
    return _Answer(first, _stamps(stamps)[-1][0])


# --- The parent -----------------------------------------------------------------------------------


def run_taskdeck(args: argparse.Namespace, databases: Databases, repetition: int, log: Path) -> dict[str, Any]:
    url = databases.fresh(f"watchers-{repetition}")
    argv = [sys.executable, str(Path(__file__).resolve()), "--side", "taskdeck", "--tree", args.tree,
            "--log", str(log), "--repetition", str(repetition), "--seed", str(args.seed + repetition),
            *(f"--{name.replace('_', '-')}={getattr(args, name)}" for name in (
                "folders", "bursts", "burst_files", "big_burst", "quiet_delay", "idle_seconds", "mode"))]
    return run_child("taskdeck", argv, side_env("taskdeck", url, 1), timeout=args.side_timeout)


def figures_of(side: str, result: dict[str, Any]) -> dict[str, float]:
    if side == "taskdeck":
        return {"start_s": result["start_s"], "enable_to_watching_s": result["enable_to_watching_s"],
                "rss_before_mb": result["rss_before_mb"], "cpu_before_percent": result["cpu_before_percent"],
                "rss_idle_mb": result["rss_idle_mb"],
                "peak_rss_mb": result["peak_rss_mb"], "idle_cpu_percent": result["idle_cpu_percent"],
                "p50_ms": percentile(result["latencies_ms"], 0.5), "p95_ms": percentile(result["latencies_ms"], 0.95),
                "max_ms": max(result["latencies_ms"]), "commands": 1.0, "big_ms": result["big_latency_ms"],
                "big_commands": float(result["big_runs"])}
    return {"start_s": result["start_s"], "rss_idle_mb": result["rss_idle_mb"], "peak_rss_mb": result["peak_rss_mb"],
            "idle_cpu_percent": result["idle_cpu_percent"], "p50_ms": percentile(result["reaction_ms"], 0.5),
            "p95_ms": percentile(result["reaction_ms"], 0.95), "max_ms": max(result["reaction_ms"]),
            "answered_p50_ms": percentile(result["answered_ms"], 0.5),
            "answered_p95_ms": percentile(result["answered_ms"], 0.95),
            "commands": statistics.median(result["commands"]), "big_ms": result["big_reaction_ms"],
            "big_answered_ms": result["big_answered_ms"], "big_commands": float(result["big_commands"])}


ROWS = [
    ("start_s", "start watching (s)", "{:.2f}"),
    ("enable_to_watching_s", "  enable to watching, seen outside (s)", "{:.2f}"),
    ("rss_before_mb", "RSS before watching (MB)", "{:.1f}"),
    ("rss_idle_mb", "RSS watching the tree (MB)", "{:.1f}"),
    ("peak_rss_mb", "peak RSS, bursts included (MB)", "{:.1f}"),
    ("cpu_before_percent", "CPU idle before watching (% of a core)", "{:.2f}"),
    ("idle_cpu_percent", "CPU idle, watching (% of a core)", "{:.2f}"),
    ("p50_ms", "latency p50 (ms)", "{:.0f}"),
    ("p95_ms", "latency p95 (ms)", "{:.0f}"),
    ("max_ms", "latency max (ms)", "{:.0f}"),
    ("answered_p50_ms", "  every command of the burst run, p50 (ms)", "{:.0f}"),
    ("answered_p95_ms", "  every command of the burst run, p95 (ms)", "{:.0f}"),
    ("commands", "runs or commands per burst", "{:.0f}"),
    ("big_ms", "big burst: latency (ms)", "{:.0f}"),
    ("big_answered_ms", "  every command of the big burst run (ms)", "{:.0f}"),
    ("big_commands", "big burst: runs or commands", "{:.0f}"),
]


def print_summary(medians: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print(f"\nMedians of {args.repeats} repetitions; {args.files:,} files in {args.folders:,} folders, "
          f"{args.mode}; bursts of {args.burst_files} files, quiet_delay {args.quiet_delay:g} s "
          f"(Taskdeck's latency: last change to run created, minus quiet_delay; watchmedo's: last change to "
          f"its command for that file)")
    width = max(len(label) for _, label, _ in ROWS)
    print(f"{'':{width}}  {'Taskdeck':>10}  {'watchmedo':>10}")
    for key, label, form in ROWS:
        cells = [form.format(medians[side][key]) if key in medians[side] else "-" for side in ("taskdeck", "peer")]
        print(f"{label:{width}}  {cells[0]:>10}  {cells[1]:>10}")
    ours = medians["taskdeck"]
    print(f"\nGoals: supervisor RSS watching < {GOAL_RSS_MB:g} MB: {ours['peak_rss_mb']:.1f} MB "
          f"{met(ours['peak_rss_mb'] < GOAL_RSS_MB)}; latency p95 <= {GOAL_P95_MS:g} ms: {ours['p95_ms']:.0f} ms "
          f"{met(ours['p95_ms'] <= GOAL_P95_MS)}; one run per burst, the big one included: "
          f"{met(ours['commands'] == 1 and ours['big_commands'] == 1)}")


def parent_main(args: argparse.Namespace) -> int:
    if not args.watchmedo or not Path(args.watchmedo).exists():
        raise BenchError("--watchmedo: give the path of a watchmedo (make bench installs one in var/bench-venv)")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="taskdeck-bench-watchers-") as scratch:
        workdir = Path(scratch)
        args.tree = args.tree or str(workdir / "tree")
        began = time.perf_counter()
        make_tree(Path(args.tree), files=args.files, folders=args.folders)
        print(f"tree: {args.files:,} files in {args.folders:,} folders at {args.tree} "
              f"({time.perf_counter() - began:.1f} s to make)")
        databases = Databases("sqlite", workdir, 1)
        log = workdir / "bench.log"
        args.log = str(log)
        figures: dict[str, list[dict[str, float]]] = {"taskdeck": [], "peer": []}
        try:
            for repetition in range(1, args.repeats + 1):
                order = ("taskdeck", "peer") if repetition % 2 else ("peer", "taskdeck")
                for side in order:
                    result = (run_taskdeck(args, databases, repetition, log) if side == "taskdeck"
                              else peer_measure(args, workdir, repetition, rng))
                    if result["problems"]:
                        raise BenchError(f"{LABELS[side]}, repetition {repetition}: {'; '.join(result['problems'])}")
                    figures[side].append(figures_of(side, result))
                    shown = ", ".join(f"{key} {value:.1f}" for key, value in figures[side][-1].items())
                    print(f"rep {repetition} {LABELS[side]:9} {shown}  (load {load_average()})", flush=True)
        except BenchError:
            print(f"--- the bench's log ---\n{log.read_text(errors='replace')[-6000:] if log.exists() else ''}",
                  file=sys.stderr)
            raise
        medians = {side: {key: statistics.median(rep[key] for rep in reps) for key in reps[0]}
                   for side, reps in figures.items()}
        print_summary(medians, args)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchmedo", default="", help="watchmedo, from the bench's own environment")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--folders", type=int, default=1_000)
    parser.add_argument("--bursts", type=int, default=20)
    parser.add_argument("--burst-files", type=int, default=100)
    parser.add_argument("--big-burst", type=int, default=10_000)
    parser.add_argument("--quiet-delay", type=float, default=1.0)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--mode", choices=["inotify", "polling"], default="inotify",
                        help="polling: Taskdeck's path on a file system it polls, watchmedo --debug-force-polling")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--side-timeout", type=float, default=900.0)
    parser.add_argument("--tree", default="", help="(the child's) the tree; default: made in a temporary folder")
    parser.add_argument("--side", choices=["taskdeck"], help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    parser.add_argument("--repetition", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.side == "taskdeck":
        print(json.dumps(taskdeck_main(args)))
        return 0
    try:
        return parent_main(args)
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
