"""Pre-flight: does this host have the free disk, memory and CPUs a deployment needs?

    python scripts/deploy/resources.py --path . --min-disk-mb 1024 --min-memory-mb 512 --min-cpus 1

One line per resource (what there is against the minimum); exit 1 when any is short, naming the
option that sets it. Read with psutil, as the service's own diagnostics read them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psutil

MB = 1024 * 1024


def shortfalls(path: Path, disk_mb: float, memory_mb: float, cpus: int) -> tuple[list[str], bool]:
    """The lines to print, and whether every resource meets its minimum."""
    free_disk = psutil.disk_usage(str(path)).free / MB
    available = psutil.virtual_memory().available / MB
    count = psutil.cpu_count() or os.cpu_count() or 1
    checks = (
        ("free disk", free_disk, disk_mb, "MB", f"under {path}", "--min-disk-mb"),
        ("available memory", available, memory_mb, "MB", "", "--min-memory-mb"),
        ("CPUs", float(count), float(cpus), "", "", "--min-cpus"),
    )
    lines: list[str] = []
    ok = True
    for name, have, need, unit, where, option in checks:
        enough = have >= need
        ok = ok and enough
        place = f" {where}" if where else ""
        verdict = "ok" if enough else f"below the minimum (set with {option})"
        lines.append(f"{name}{place}: {have:.0f}{unit} (minimum {need:g}{unit}): {verdict}")
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=Path.cwd())
    parser.add_argument("--min-disk-mb", type=float, required=True)
    parser.add_argument("--min-memory-mb", type=float, required=True)
    parser.add_argument("--min-cpus", type=int, required=True)
    args = parser.parse_args(argv)
    lines, ok = shortfalls(args.path, args.min_disk_mb, args.min_memory_mb, args.min_cpus)
    for line in lines:
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
