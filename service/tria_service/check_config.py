"""`python -m tria_service --check-config`: validate the configuration, start nothing.

A deployment script (scripts/comprehensive_deploy.sh) or an image's entrypoint can ask whether the
service would accept its environment and env file (`$TRIA_ENV_FILE`, else `.env`) before anything
is brought up, and get the service's own messages: the same checks as a real start, no value echoed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from tria_service.config import ConfigError, Settings, resolve_env_file

CHECK_CONFIG_FLAG = "--check-config"
EXIT_VALID = 0
EXIT_BAD_CONFIG = 2


def check_config(load: Callable[[], tuple[Settings, object]]) -> int:
    """Run ``load`` (the service's own configuration loader); 0 when valid, 2 with every problem.

    The loader is passed in, not imported: it lives in ``__main__`` beside the server settings.
    """
    try:
        settings, _ = load()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_CONFIG
    critical = ", ".join(sorted(d.value for d in settings.tria_critical_dependencies)) or "none"
    print(
        f"configuration valid (environment, then {resolve_env_file()}): env {settings.tria_env}, "
        f"critical dependencies: {critical}"
    )
    return EXIT_VALID
