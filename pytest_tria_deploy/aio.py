"""A session-scoped event loop for deployment suites, with no configuration from the user.

pytest-asyncio reads its defaults from ini keys; where the user's configuration leaves them
unset, the plugin supplies auto mode and session-scoped loops (one loop for the session's
pools and clients and for every test). Whatever the user sets explicitly wins.
"""

from __future__ import annotations

import pytest

from pytest_tria_deploy.ini_defaults import seed_ini

DEFAULTS = {
    "asyncio_mode": "auto",
    "asyncio_default_fixture_loop_scope": "session",
    "asyncio_default_test_loop_scope": "session",
}


def apply_defaults(config: pytest.Config) -> None:
    """Seed pytest-asyncio's ini values that neither an ini file nor ``-o`` has set."""
    if config.pluginmanager.hasplugin("asyncio"):
        seed_ini(config, DEFAULTS, unable="supply pytest-asyncio defaults")
