"""A session-scoped event loop for deployment suites, with no configuration from the user.

pytest-asyncio reads its defaults from ini keys; where the user's configuration leaves them
unset, the plugin supplies auto mode and session-scoped loops (one loop for the session's
pools and clients and for every test). Whatever the user sets explicitly wins.
"""

from __future__ import annotations

import pytest

DEFAULTS = {
    "asyncio_mode": "auto",
    "asyncio_default_fixture_loop_scope": "session",
    "asyncio_default_test_loop_scope": "session",
}


def apply_defaults(config: pytest.Config) -> None:
    """Seed pytest-asyncio's ini values that neither an ini file nor ``-o`` has set.

    pytest has no public way for one plugin to default another plugin's ini key, so this writes
    the config's ini cache, and only for keys absent from the parsed ini (``_inicfg``). When a
    pytest release changes those internals, the user is warned (and can set the keys).
    """
    if not config.pluginmanager.hasplugin("asyncio"):
        return
    explicit = getattr(config, "_inicfg", None)
    cache = getattr(config, "_inicache", None)
    if not isinstance(explicit, dict) or not isinstance(cache, dict):
        keys = ", ".join(f"{name} = {value}" for name, value in DEFAULTS.items())
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                "tria-deploy: cannot supply pytest-asyncio defaults with this pytest (its config "
                f"internals changed); set them in your ini file: {keys}"
            ),
            stacklevel=2,
        )
        return
    for name, value in DEFAULTS.items():
        if name not in explicit:
            cache[name] = value
