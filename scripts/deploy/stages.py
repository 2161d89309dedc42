"""The gate's verdict from verdict.json, as one line for the deployment log, and as exit status.

    python scripts/deploy/stages.py reports/verdict.json

The stage table is tria-deploy verify's own (printed just before); this only says what the
script decides on. Exit status: 0 when the verdict lets the release take traffic (PASS or
WARN), 1 when it does not (FAIL or BLOCKED), 2 when there is no readable verdict (the gate did
not get that far).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ACCEPTED = ("PASS", "WARN")


def verdict_line(verdict: Mapping[str, Any]) -> str:
    """``gate verdict: <VERDICT>``, then the reason when there is one (already redacted)."""
    reason = verdict.get("reason") or ""
    return f"gate verdict: {verdict.get('verdict', '?')}" + (f" — {reason}" if reason else "")


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
    if not isinstance(verdict, dict):
        print(f"no readable verdict at {args[0]}: not a JSON object", file=sys.stderr)
        return 2
    print(verdict_line(verdict))
    return 0 if verdict.get("verdict") in ACCEPTED else 1


if __name__ == "__main__":
    sys.exit(main())
