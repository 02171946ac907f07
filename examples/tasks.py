"""The example tasks `make run` loads: real work on a generated library, visible progress."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import PurePosixPath

from examples.library import PLATFORMS, ensure_library
from tasks_app.definitions import task


@task(
    title="Scan library",
    type="scan",
    cron_string="0 3 * * *",
    timeout=3600,
    parameters=[
        {"key": "platforms", "type": "string", "choices": list(PLATFORMS), "allow_custom": True, "default": "",
         "description": "Comma-separated platforms to scan; empty scans all."},
        {"key": "pace", "type": "number", "default": 0.02,
         "description": "Seconds spent per file, to make progress visible."},
        {"key": "changed_paths", "type": "string", "default": "",
         "description": "Filled in by filesystem_watcher: the paths that changed, one a line; when given (and "
                        "platforms is not), only their platforms are scanned."},
    ],
)
def scan_library(ctx):
    """Hash every file of the library, platform by platform, recording each one as activity."""
    root = ensure_library()
    wanted = ([p.strip() for p in str(ctx.params["platforms"]).split(",") if p.strip()]
              or platforms_of(str(ctx.params["changed_paths"] or "").splitlines()) or list(PLATFORMS))
    unknown = sorted(set(wanted) - set(PLATFORMS))
    if unknown:
        raise ValueError(f"unknown platform(s): {', '.join(unknown)}")
    files = [path for platform in wanted for path in sorted((root / "roms" / platform).glob("*.bin"))]
    ctx.log.info("Scanning %d files on %s", len(files), ", ".join(wanted))
    total_bytes = 0
    for index, path in enumerate(files, start=1):
        ctx.check_cancelled()
        data = path.read_bytes()
        total_bytes += len(data)
        digest = hashlib.sha1(data).hexdigest()
        ctx.activity(item_id=f"rom:{path.stem}", item_title=path.name, item_type="rom", action="scan",
                     status="success", data={"sha1": digest, "bytes": len(data)})
        ctx.progress(index, len(files), f"Scanning {path.parent.name}")
        time.sleep(float(ctx.params["pace"] or 0))
    return {"files": len(files), "bytes": total_bytes}


def platforms_of(changed_paths: list[str]) -> list[str]:
    """The platforms whose folders hold the changed paths (``.../roms/gba/x.bin``: gba); all of
    them for a path above the platforms' folders (``.../roms/``, the watcher's summary of a large
    burst); none for no path."""
    found: list[str] = []
    for line in changed_paths:
        parts = PurePosixPath(line.strip()).parts
        if "roms" not in parts:
            continue
        below = parts[parts.index("roms") + 1:]
        if not below:
            return list(PLATFORMS)
        if below[0] in PLATFORMS and below[0] not in found:
            found.append(below[0])
    return [platform for platform in PLATFORMS if platform in found]


@task(title="Clean up orphaned resources", type="cleanup", manual_run=True, timeout=600)
def cleanup_orphaned_resources(ctx):
    """Delete leftover temporary files from the library cache."""
    root = ensure_library()
    orphans = sorted((root / "cache").glob("*.tmp"))
    for index, path in enumerate(orphans, start=1):
        ctx.check_cancelled()
        size = path.stat().st_size
        path.unlink()
        ctx.activity(item_id=f"file:{path.name}", item_title=path.name, item_type="file", action="delete",
                     status="success", data={"bytes": size})
        ctx.progress(index, len(orphans), "Removing orphans")
    ctx.log.info("Removed %d orphaned file(s)", len(orphans))
    return {"removed": len(orphans)}


def decide(item: dict) -> tuple[str, str]:
    """The cleanup rules of a media evaluator: what to do with one catalogue item, and why."""
    if item["rating"] >= 8.0:
        return "keep", "highly rated"
    if item["watched"] and item["age_days"] > 365 and item["size_gb"] > 20:
        return "delete", "watched, over a year old and large"
    if item["watched"] and item["age_days"] > 180:
        return "unmonitor", "watched over six months ago"
    return "keep", "recent or unwatched"


@task(title="Evaluate cleanup rules", type="cleanup", interval=60, interval_unit="minutes",
      supports_dry_run=True, timeout=600)
def evaluate_rules(ctx):
    """Apply keep / unmonitor / delete rules to the catalogue; a dry run only reports."""
    root = ensure_library()
    path = root / "catalogue.json"
    items = json.loads(path.read_text(encoding="utf-8"))
    candidates = [item for item in items if item["state"] == "monitored"]
    for index, item in enumerate(candidates, start=1):
        ctx.check_cancelled()
        action, why = decide(item)
        if not ctx.dry_run and action != "keep":
            item["state"] = "deleted" if action == "delete" else "unmonitored"
        ctx.activity(item_id=f"movie:{item['id']}", item_title=item["title"], item_type="movie", action=action,
                     status="success", message=why + (" (dry run)" if ctx.dry_run else ""))
        ctx.progress(index, len(candidates), "Evaluating rules")
    if not ctx.dry_run:
        path.write_text(json.dumps(items, indent=1), encoding="utf-8")
    return {"evaluated": len(candidates), "dry_run": ctx.dry_run}
