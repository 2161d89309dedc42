"""Collection: which stage and target each test belongs to, selection, order, parametrization.

Staged items run in stage order per target and keep their file order within a stage; unstaged
items keep their own slots. Under pytest-xdist (see distribute.py) a target's staged items
form one group, so one worker runs them in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import pytest

from pytest_tria_deploy.outcomes import ItemInfo
from pytest_tria_deploy.report import labels
from pytest_tria_deploy.settings import TriaSettings
from pytest_tria_deploy.stages import StageGraph, suggest

ITEM_INFO = pytest.StashKey[ItemInfo]()
TARGET_PARAM = "tria_target"
INSTANCE_PARAM = "tria_instance"
INSTANCE_FIXTURE = "service"


def stage_of(node: pytest.Item, graph: StageGraph) -> str | None:
    """The marker's stage, else the stage the module name ``test_NN_<stage>.py`` names."""
    marker = node.get_closest_marker("tria_stage")
    if marker is not None:
        name = marker.args[0] if marker.args else marker.kwargs.get("name", "")
        return str(name)
    return graph.stage_for_module(node.path)


def parametrize(metafunc: pytest.Metafunc, settings: TriaSettings) -> None:
    """Parametrize the session fixtures over targets (and service instances) when there are several.

    Staged tests always take part, so their ids carry the target name; other tests only when
    they use a target fixture.
    """
    names = metafunc.fixturenames
    staged = stage_of(metafunc.definition, settings.graph) is not None
    wants_instances = INSTANCE_FIXTURE in names and any(
        len(t.instance_urls) > 1 for t in settings.targets
    )
    if wants_instances:
        combos = [
            (target.name, index, label)
            for target in settings.targets
            for index, label in enumerate(_instance_labels(target.instance_urls))
        ]
        multi = len(settings.targets) > 1
        if TARGET_PARAM not in names:
            names.append(TARGET_PARAM)
        metafunc.parametrize(
            [TARGET_PARAM, INSTANCE_PARAM],
            [(t, i) for t, i, _ in combos],
            ids=[f"{t}-{label}" if multi else label for t, _, label in combos],
            indirect=True,
            scope="session",
        )
    elif len(settings.targets) > 1 and (staged or TARGET_PARAM in names):
        if TARGET_PARAM not in names:
            names.append(TARGET_PARAM)
        metafunc.parametrize(
            TARGET_PARAM,
            settings.target_names,
            ids=settings.target_names,
            indirect=True,
            scope="session",
        )


def _instance_labels(urls: Sequence[str]) -> list[str]:
    """host:port of each instance (never the user-info of its URL), or indexes when they clash."""
    labels = [_host_port(u) for u in urls] or ["service"]
    return labels if len(set(labels)) == len(labels) else [str(i) for i in range(len(urls))]


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "instance"
    return f"{host}:{port}" if port else host


def assign(items: Sequence[pytest.Item], settings: TriaSettings) -> list[tuple[pytest.Item, str]]:
    """Give each staged item its stage and target; returns the items whose stage is unknown."""
    problems: list[tuple[pytest.Item, str]] = []
    for item in items:
        stage = stage_of(item, settings.graph)
        if stage is None:
            continue
        if stage not in settings.graph:
            problems.append(
                (
                    item,
                    f"{item.nodeid}: unknown stage '{stage}' in @pytest.mark.tria_stage; known: "
                    f"{', '.join(settings.graph.names)}{suggest(stage, settings.graph.names)}",
                )
            )
            continue
        target = target_of(item, settings)
        item.stash[ITEM_INFO] = ItemInfo(stage, target, item.nodeid)
        item.user_properties += [("tria_stage", stage), ("tria_target", target)]
        item.add_marker(stage)  # so that ``-m database`` selects the database stage
        labels.add_labels(item, stage, settings.is_critical(target, stage))
    return problems


def target_of(item: pytest.Item, settings: TriaSettings) -> str:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and TARGET_PARAM in callspec.params:
        return str(callspec.params[TARGET_PARAM])
    return settings.targets[0].name


def select(
    items: Sequence[pytest.Item], settings: TriaSettings
) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """With ``--tria-stage``: keep the selected stages and, unless --tria-no-deps, their deps."""
    if not settings.selected_stages:
        return list(items), []
    wanted = settings.run_stages
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        info = item.stash.get(ITEM_INFO, None)
        (kept if info is not None and info.stage in wanted else dropped).append(item)
    return kept, dropped


def order(items: list[pytest.Item], settings: TriaSettings) -> None:
    """Sort staged items by (target, stage) in place, stable; unstaged items keep their slots."""
    slots = [i for i, item in enumerate(items) if ITEM_INFO in item.stash]
    targets = settings.target_names
    graph = settings.graph

    def key(pos: int) -> tuple[int, int, int]:
        info = items[pos].stash[ITEM_INFO]
        return targets.index(info.target), graph.index(info.stage), pos

    staged = [items[i] for i in sorted(slots, key=key)]
    for slot, item in zip(slots, staged, strict=True):
        items[slot] = item
