"""pytest's configuration as ``tria-deploy verify`` would see it, asked of pytest itself.

``tria-deploy report`` and ``targets`` must find the reports and the targets file where ``verify``
(pytest with the plugin) puts and reads them: the ``tria_report_dir`` and ``tria_config`` ini keys
of the inifile pytest picks (pytest.toml, pytest.ini, pyproject.toml, tox.ini, setup.cfg: pytest's
rules, which change between releases) and the options in ``PYTEST_ADDOPTS``. So pytest parses
verify's command line here: ``pytest.main`` with a plugin whose ``pytest_cmdline_main`` reads the
parsed config and ends the run there, before configure, collection or any output. Conftest files
are not loaded (``--noconftest``): they cannot change the inifile, and no suite is imported.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_tria_deploy.activation import read_ini
from pytest_tria_deploy.settings import DEFAULT_REPORT_DIR

DEFAULT_SUITES = Path("suites")  # the default of verify's --suites


@dataclass(frozen=True)
class GateIni:
    """The settings ``verify`` would take from the inifile (or ``PYTEST_ADDOPTS``)."""

    inipath: Path | None
    report_dir: Path  # relative to the current directory, which is verify's --rootdir
    config_file: str | None  # tria_config, None when unset


class _Probe:
    """Reads the config once pytest has parsed it, and ends the run there."""

    def __init__(self) -> None:
        self.found: GateIni | None = None
        self.error: pytest.UsageError | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_cmdline_main(self, config: pytest.Config) -> int:
        try:
            self.found = GateIni(
                inipath=config.inipath,
                report_dir=Path(_setting(config, "tria_report_dir") or DEFAULT_REPORT_DIR),
                config_file=_setting(config, "tria_config"),
            )
        except pytest.UsageError as exc:
            self.error = exc
        return 0


def _setting(config: pytest.Config, name: str) -> str | None:
    """The option (from PYTEST_ADDOPTS), else the ini key: the plugin's precedence."""
    value = config.getoption(name)
    if value is None:
        value = read_ini(config, name)
    return None if value is None else str(value)


def gate_ini(cwd: Path) -> GateIni:
    """The ini settings of ``tria-deploy verify`` run in ``cwd`` with its default --suites;
    raises pytest.UsageError with pytest's own message when pytest rejects its configuration."""
    probe = _Probe()
    said = io.StringIO()
    with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
        pytest.main([str(DEFAULT_SUITES), f"--rootdir={cwd}", "--noconftest"], plugins=[probe])
    if probe.error is not None:
        raise probe.error
    if probe.found is None:
        raise pytest.UsageError(said.getvalue().strip() or "pytest rejected its configuration")
    return probe.found
