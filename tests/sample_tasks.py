"""Task callables the tests point Task rows at; importable by the qcluster worker processes."""
from __future__ import annotations

import os
import time
from pathlib import Path


def noop(ctx):
    return None


def record(ctx):
    """Appends one line per execution to the file named by the ``path`` parameter."""
    with Path(ctx.params["path"]).open("a", encoding="utf-8") as handle:
        handle.write(f"{ctx.run_id} {os.getpid()}\n")
    time.sleep(float(ctx.params.get("hold") or 0))
    return {"pid": os.getpid()}


def items(ctx):
    count = int(ctx.params.get("count") or 10)
    for index in range(1, count + 1):
        ctx.activity(item_id=f"item:{index}", item_title=f"Item <{index}>", item_type="thing",
                     action="delete" if index % 3 == 0 else "keep", status="failed" if index == count else "success")
        ctx.progress(index, count, f"item {index}")
    ctx.log.info("processed %d items", count)
    print("printed line")
    return {"count": count, "dry_run": ctx.dry_run}


def fail(ctx):
    raise ValueError("disk on fire")


def bad_result(ctx):
    return object()


def cooperative(ctx):
    """Runs until cancelled (checking often), or for ``seconds``."""
    deadline = time.monotonic() + float(ctx.params.get("seconds") or 30)
    while time.monotonic() < deadline:
        ctx.check_cancelled()
        ctx.progress(1, 2, "waiting")
        time.sleep(0.05)
    return "finished"


def stubborn(ctx):
    """Never looks at ctx: only a kill stops it before ``seconds``."""
    Path(ctx.params["path"]).write_text(str(os.getpid()), encoding="utf-8") if ctx.params.get("path") else None
    time.sleep(float(ctx.params.get("seconds") or 30))
    return "woke up"


def fast_progress(ctx):
    """Reports progress far faster than it is written; only the throttled writes reach the database."""
    total = int(ctx.params.get("count") or 20000)
    for index in range(1, total + 1):
        ctx.progress(index, total, f"step {index}")
    return total


HOLD_LOCK = """
import fcntl, pathlib, sys, time
with open(sys.argv[1], "a") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    pathlib.Path(sys.argv[3]).touch()
    time.sleep(float(sys.argv[2]))
"""


def return_while_database_locked(ctx):
    """Returns while another process holds the database's write lock for ``seconds``."""
    import subprocess
    import sys

    from django.db import connection

    lock = f"{connection.settings_dict['NAME']}-writelock"
    ready = Path(f"{lock}.held-{ctx.run_id}")
    subprocess.Popen([sys.executable, "-c", HOLD_LOCK, lock, str(ctx.params.get("seconds") or 2.5), str(ready)])
    deadline = time.monotonic() + 10
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "done"


HOSTILE = "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\"><b>bold</b>"


def hostile(ctx):
    """Writes markup everywhere a page shows task output: it must arrive as text."""
    ctx.log.info("log line %s", HOSTILE)
    print(f"printed {HOSTILE}")
    ctx.activity(item_id="x1", item_title=HOSTILE, action="delete", status="failed", message=HOSTILE)
    ctx.progress(1, 2, HOSTILE)
    raise ValueError(HOSTILE)


#: A file name os.listdir() gives for bytes that are not UTF-8 (a lone surrogate, surrogateescape).
ODD_NAME = b"caf\xe9.rom".decode("utf-8", "surrogateescape")


def odd_text(ctx):
    """Writes text no database or page takes as it is (a lone surrogate, a NUL) everywhere task
    code writes text, and a NaN where a number goes."""
    ctx.progress(1, float("nan"), f"Scanning {ODD_NAME}")
    ctx.activity(item_id=ODD_NAME, item_title=f"{ODD_NAME}\x00", action="keep", status="success",
                 message=ODD_NAME, data={ODD_NAME: [ODD_NAME]})
    print(f"found {ODD_NAME}\x00")
    ctx.log.info("logged %s", ODD_NAME)
    if ctx.params.get("fail"):
        raise ValueError(f"cannot open {ODD_NAME}\x00")
    ctx.progress(2, 2, "done")
    return {"file": ODD_NAME, ODD_NAME: ODD_NAME}


def nan_result(ctx):
    return {"ratio": float("nan")}


def talking(ctx):
    """Prints ``lines`` numbered lines (an odd file name among them), then waits for the file named
    by ``gate`` (if any) to exist, then prints as many again: output that lands while it runs."""
    lines = int(ctx.params.get("lines") or 50)
    for index in range(lines):
        print(f"before {index:04d} {ODD_NAME if index == 1 else 'é€'}")
    gate = ctx.params.get("gate")
    deadline = time.monotonic() + 30
    while gate and not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    for index in range(lines):
        print(f"after {index:04d}")
    return lines


def flood(ctx):
    """Prints lines until asked to stop (at most ``lines``); ``stubborn`` ones never look at ctx."""
    lines = int(ctx.params.get("lines") or 100_000)
    for index in range(lines):
        print(f"flood line {index:06d}")
        if not ctx.params.get("stubborn") and ctx.cancelled:
            return "stopped"
    return "finished"
