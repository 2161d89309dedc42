"""Print the env file of the local stack `tria-deploy up` is running, if one is (exit 1 if not).

comprehensive_deploy.sh reuses a running stack instead of starting a second one; it can only
when that stack wrote its env file (`tria-deploy up --env-file F`), since the endpoints and
secrets are in it. The stack's record is tria-deploy's own (``stack.json`` in its state dir,
``$TRIA_STATE_DIR`` overrides).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pytest_tria_deploy.provision.managed import owner_alive, state_dir

STACK_RECORD = "stack.json"


def running_env_file() -> Path | None:
    """The env file of a stack whose owner process is alive and that wrote one."""
    try:
        record = json.loads((state_dir() / STACK_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not owner_alive(record):
        return None
    env_file = record.get("env_file")
    if not isinstance(env_file, str) or not Path(env_file).is_file():
        return None
    return Path(env_file)


def main() -> int:
    env_file = running_env_file()
    if env_file is None:
        return 1
    print(env_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
