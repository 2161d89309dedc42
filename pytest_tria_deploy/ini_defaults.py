"""Defaults for other plugins' ini keys, where the user's configuration leaves them unset.

pytest has no public way for one plugin to default another's ini key, so this writes the config's
ini cache, and only for keys absent from the parsed ini (``_inicfg``, which ``-o`` also fills).
When a pytest release changes those internals, the user is warned and told what to set.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest


def seed_ini(config: pytest.Config, values: Mapping[str, str], *, unable: str) -> None:
    """Seed ``values`` the user has not set; ``unable`` says what is lost when that can't be done.

    Call it at configure time, before the plugin that reads the keys does.
    """
    explicit = getattr(config, "_inicfg", None)
    cache = getattr(config, "_inicache", None)
    if not isinstance(explicit, dict) or not isinstance(cache, dict):
        keys = ", ".join(f"{name} = {value}" for name, value in values.items())
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                f"tria-deploy: cannot {unable} with this pytest (its config internals changed); "
                f"set them in your ini file: {keys}"
            ),
            stacklevel=3,
        )
        return
    for name, value in values.items():
        if name not in explicit:
            cache[name] = value
