"""Whether a run asked for tria-deploy, decided from configuration alone, before collection.

The plugin loads for every pytest run through its entry point, so this module stays import-light
(pytest and the standard library only): an unrelated project pays for one look at its rootdir.
"""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

OPTIONS = (
    "tria_target",
    "tria_config",
    "tria_stage",
    "tria_no_deps",
    "tria_gate",
    "tria_report_dir",
    "tria_allow_destructive",
    "tria_no_default_reports",
)
INI_KEYS = OPTIONS  # every option has an ini key of the same name
CONFIG_FILE = "tria.toml"

INACTIVE_MARKER = (
    "{nodeid}: @pytest.mark.tria_stage, but tria-deploy is not active in this run; add a "
    "tria.toml (it may be empty) or a [tool.tria] table at the rootdir ({rootdir}), set a "
    "tria_* ini key, or pass a --tria-* option"
)


BOOL_KEYS = ("tria_no_deps", "tria_allow_destructive", "tria_no_default_reports")


def read_ini(config: pytest.Config, key: str) -> Any:
    """An ini value (None when unset); a malformed value is a usage error naming the key."""
    try:
        return config.getini(key)
    except pytest.UsageError as exc:
        fix = "use true or false" if key in BOOL_KEYS else "fix the value"
        raise pytest.UsageError(
            f"tria-deploy: ini key {key} (ini file or -o): {exc}; {fix}"
        ) from None


def is_active(config: pytest.Config) -> bool:
    """Active when a --tria-* option or tria_* ini key is given, or the rootdir configures tria."""
    if any(config.getoption(name) is not None for name in OPTIONS):
        return True
    if any(read_ini(config, key) is not None for key in INI_KEYS):
        return True
    root = config.rootpath
    if (root / CONFIG_FILE).is_file():
        return True
    return _has_tool_tria(root / "pyproject.toml")


def _has_tool_tria(path: Any) -> bool:
    if not path.is_file():
        return False
    try:
        text = path.read_text(encoding="utf-8")
        if "tool.tria" not in text:
            return False
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False  # pytest itself reports a pyproject.toml it cannot read
    tool = data.get("tool")
    return isinstance(tool, dict) and "tria" in tool


class DormantGuard:
    """Inactive run: a test asking for a stage fails with how to activate, not silently ungated."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.marked: set[str] = set()

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.marked = {i.nodeid for i in items if i.get_closest_marker("tria_stage") is not None}
        if self.marked:
            self.config.pluginmanager.register(_FailMarked(self.marked, self.config))


class _FailMarked:
    """Registered only when marked tests exist, so a plain project pays nothing per test."""

    def __init__(self, nodeids: set[str], config: pytest.Config) -> None:
        self.nodeids = nodeids
        self.rootdir = config.rootpath

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if item.nodeid in self.nodeids:
            pytest.fail(
                INACTIVE_MARKER.format(nodeid=item.nodeid, rootdir=self.rootdir), pytrace=False
            )
