"""Print the gate's stages in order from verdict.json, one line each, for the deployment log.

    python scripts/deploy/stages.py reports/verdict.json

Exit status: 0 when the verdict lets the release take traffic (PASS or WARN), 1 when it does not
(FAIL or BLOCKED), 2 when there is no readable verdict (the gate did not get that far).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ACCEPTED = ("PASS", "WARN")


def stage_line(stage: Mapping[str, Any]) -> str:
    """``stage <name>: <STATUS> (counts)``, then the reason when there is one (already redacted)."""
    counts = ", ".join(
        f"{stage.get(key, 0)} {key}" for key in ("passed", "failed", "skipped", "blocked")
    )
    line = f"stage {stage.get('name', '?')}: {stage.get('status', '?')} ({counts})"
    reason = str(stage.get("reason") or "")
    return f"{line} — {reason}" if reason else line


def report(verdict: Mapping[str, Any]) -> list[str]:
    """Each target's stages in the order the gate ran them, then the verdict and its reason."""
    lines: list[str] = []
    for target in verdict.get("targets", []):
        lines += [stage_line(stage) for stage in target.get("stages", [])]
    reason = verdict.get("reason") or ""
    lines.append(
        f"gate verdict: {verdict.get('verdict', '?')}" + (f" — {reason}" if reason else "")
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: stages.py VERDICT_JSON", file=sys.stderr)
        return 2
    try:
        verdict = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"no readable verdict at {args[0]}: {type(exc).__name__}", file=sys.stderr)
        return 2
    for line in report(verdict):
        print(line)
    return 0 if verdict.get("verdict") in ACCEPTED else 1


if __name__ == "__main__":
    sys.exit(main())
