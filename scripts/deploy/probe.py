"""Does ``URL`` answer 200 (and, with ``--release``, is it that release answering)? Exit 0 or 1.

    python scripts/deploy/probe.py http://127.0.0.1:8123/health --release r7

A release is live when its own /health answers: any other process answering on the port (an
older release, another program that took the port first) must not pass for it, so with
``--release`` the body's ``releaseId`` (the service's TRIA_RELEASE_ID) must match.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 5


def answers(url: str, release: str | None) -> bool:
    """Whether ``url`` answers 200, and carries ``releaseId == release`` when one is given."""
    if not url.startswith(("http://", "https://")):
        return False
    try:
        # The scheme is checked above (S310 is about file: and custom schemes).
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            if response.status != 200:
                return False
            if release is None:
                return True
            body = json.loads(response.read())
    except (OSError, ValueError):  # refused, timed out, an HTTP error, or not JSON
        return False
    return isinstance(body, dict) and body.get("releaseId") == release


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--release", help="the releaseId the body must carry")
    args = parser.parse_args(argv)
    return 0 if answers(args.url, args.release) else 1


if __name__ == "__main__":
    sys.exit(main())
