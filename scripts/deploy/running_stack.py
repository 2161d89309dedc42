"""Print ``<owner pid> <env file>`` of the local stack `tria-deploy up` runs, if any (else exit 1).

comprehensive_deploy.sh reuses a running stack instead of starting a second one; it can only
when that stack wrote its env file (`tria-deploy up --env-file F`), since the endpoints and
secrets are in it. The owner pid tells the script whether it started that stack itself (only
then does ``--down`` stop it). The record is tria-deploy's own, read by ``running_stack()``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pytest_tria_deploy.cli.stack import running_stack


def running_env_file() -> tuple[int, Path] | None:
    """The owner pid and env file of a live stack that wrote one."""
    record = running_stack()
    if record is None:
        return None
    env_file = record.get("env_file")
    if not isinstance(env_file, str) or not Path(env_file).is_file():
        return None
    return int(str(record["owner_pid"])), Path(env_file)


def main() -> int:
    found = running_env_file()
    if found is None:
        return 1
    print(*found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
