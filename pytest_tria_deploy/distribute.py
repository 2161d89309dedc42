"""pytest-xdist: a target's staged tests run on one worker, in order; the rest spread freely.

The controller schedules with xdist's loadgroup scheduler; each worker suffixes the node ids of
a target's staged items with ``@tria-<target>``, which is how that scheduler groups. The gate
then decides inside that worker, and the verdict is merged on the controller from the reports.
"""

from __future__ import annotations

import pytest

LOADGROUP_FLAG = "tria_loadgroup"
_COMPATIBLE = ("no", "load", "loadgroup", "each")


def configure(config: pytest.Config) -> None:
    """Switch the default ``--dist=load`` to loadgroup; warn about modes that split groups."""
    dist = getattr(config.option, "dist", "no")
    if dist == "load":
        config.option.dist = "loadgroup"
    elif dist not in _COMPATIBLE:
        config.issue_config_time_warning(
            pytest.PytestConfigWarning(
                f"tria-deploy: --dist={dist} may split a target's stages across workers, so "
                "blocking would not see every failure; use --dist=load (the default) or loadgroup"
            ),
            stacklevel=2,
        )
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get(LOADGROUP_FLAG):
        # Workers re-parse the original arguments, which may not say --dist=loadgroup.
        config.option.loadgroup = True


def mark_node(config: pytest.Config, workerinput: dict[str, object]) -> None:
    """Controller side: tell a starting worker to group (see ``configure``)."""
    if getattr(config.option, "dist", None) == "loadgroup":
        workerinput[LOADGROUP_FLAG] = True


def grouping(config: pytest.Config) -> bool:
    """Whether this process is a worker that must suffix staged node ids."""
    return hasattr(config, "workerinput") and bool(config.getvalue("loadgroup"))


def group_name(target: str) -> str:
    return f"tria-{target}"


def join_group(item: pytest.Item, group: str) -> None:
    """Suffix the node id with ``@group``, which is how xdist's loadgroup scheduler groups.

    xdist's own suffixing (for ``xdist_group`` markers) assigns ``item._nodeid``, which pytest
    >= 9.2 no longer reads (ids are structured ``_id`` objects), so the suffix is set here.
    """
    new_id = f"{item.nodeid}@{group}"
    current = getattr(item, "_id", None)
    if current is not None and hasattr(type(current), "parse"):
        item._id = type(current).parse(new_id)
    else:
        item._nodeid = new_id  # type: ignore[attr-defined]
