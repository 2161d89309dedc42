"""pytest-xdist: a target's staged tests run on one worker, in order; the rest spread freely.

The controller schedules with xdist's loadgroup scheduler, which groups the ids a worker sends
at the end of its collection by their ``@group`` suffix. Each worker suffixes the ids of a
target's staged items with ``@tria-<target>`` just for that message and restores them at once,
so tests run, report, and appear in JUnit and ``--lf`` under their plain ids, exactly as
without ``-n``. The gate then decides inside that one worker, and the controller merges the
verdict from the reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

LOADGROUP_FLAG = "tria_loadgroup"
SUFFIX = "@tria-"
_COMPATIBLE = ("no", "load", "loadgroup")


def configure(config: pytest.Config) -> None:
    """Switch the default ``--dist=load`` to loadgroup; refuse or warn about modes that split."""
    dist = getattr(config.option, "dist", "no")
    if dist == "each":
        raise pytest.UsageError(
            "tria-deploy: --dist=each runs every test on every worker, so each stage would be "
            "verified (and counted) once per worker; use -n with --dist=load (the default) "
            "or --dist=loadgroup"
        )
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
    return f"{SUFFIX[1:]}{target}"


def plain_id(nodeid: str) -> str:
    """``nodeid`` without a tria group suffix (xdist names a crashed test by its grouped id)."""
    head, sep, _ = nodeid.rpartition(SUFFIX)
    return head if sep else nodeid


def suffix_ids(groups: Sequence[tuple[pytest.Item, str]]) -> Callable[[], None]:
    """Suffix each item's node id with ``@group``; returns the function that restores them.

    pytest has no public way to change a node id. xdist's own suffixing (for ``xdist_group``)
    assigns ``item._nodeid``, which pytest >= 9.2 no longer reads (ids are structured ``_id``
    objects), so this sets whichever the running pytest uses and checks that it took.
    """
    undo: list[tuple[pytest.Item, str, object]] = []

    def restore() -> None:
        for item, attr, old in reversed(undo):
            setattr(item, attr, old)

    for item, group in groups:
        new_id = f"{item.nodeid}@{group}"
        current = getattr(item, "_id", None)
        if current is not None and hasattr(type(current), "parse"):
            undo.append((item, "_id", current))
            item._id = type(current).parse(new_id)
        else:
            undo.append((item, "_nodeid", getattr(item, "_nodeid", item.nodeid)))
            item._nodeid = new_id  # type: ignore[attr-defined]
        if item.nodeid != new_id:
            restore()
            raise GroupingUnavailable(
                "tria-deploy: xdist grouping is unavailable with this pytest/pytest-xdist "
                f"(a node id cannot be suffixed: {item.nodeid!r}); run without -n"
            )
    return restore


class GroupingUnavailable(RuntimeError):
    """The running pytest stores node ids in a way this version cannot suffix."""
