"""Which worker runs which test, and in what order, under pytest-xdist (`make test`: ``-n 2 --dist loadgroup
--no-loadscope-reorder``); tests/conftest.py calls ``group_and_order`` on the collected tests.

- Tests that share a session or module fixture of this suite (a workflow run, a trained model, a dataset),
  directly or through another test that shares one of theirs, form one ``xdist_group``: they run on one
  worker, so the fixture is built once.
- The costliest come first, so that neither worker is left with a long run at the end: groups holding a
  workflow run (marker ``slow``), then the other groups, then single tests; a group's tests stay together and
  in their order (a module fixture is then set up once, also without xdist).
"""

from __future__ import annotations

from pathlib import Path

import pytest


def shared_fixtures(item: pytest.Item) -> list[str]:
    """The session and module fixtures of this suite (not pytest's own) that ``item`` uses, directly or not."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return sorted({f"{Path(d.baseid).stem or 'tests'}.{d.argname}" for defs in info.name2fixturedefs.values()
                   for d in defs if d.scope in ("session", "package", "module") and d.baseid})


def groups(items: list[pytest.Item]) -> dict[str, str]:
    """Test id -> its group's name, for the tests that use a shared fixture (connected through them)."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    uses = {item.nodeid: shared_fixtures(item) for item in items}
    for names in uses.values():
        for name in names[1:]:
            parent[root(name)] = root(names[0])
    return {nodeid: root(names[0]) for nodeid, names in uses.items() if names}


def group_and_order(items: list[pytest.Item]) -> None:
    """Mark each test's group and sort ``items`` in place (module docstring)."""
    group = groups(items)
    for item in items:
        if item.nodeid in group:
            item.add_marker(pytest.mark.xdist_group(name=group[item.nodeid]))
    unit = {item.nodeid: group.get(item.nodeid, item.nodeid) for item in items}
    rank: dict[str, int] = {}
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        cost = 0 if item.get_closest_marker("slow") else 1 if item.nodeid in group else 2
        rank[unit[item.nodeid]] = min(rank.get(unit[item.nodeid], cost), cost)
        first.setdefault(unit[item.nodeid], index)
    items.sort(key=lambda item: (rank[unit[item.nodeid]], first[unit[item.nodeid]]))


def name_groups_in_node_ids(config: pytest.Config, items: list[pytest.Item]) -> None:
    """What pytest-xdist's ``--dist loadgroup`` does on each worker, where pytest-xdist 3.8 cannot: append
    ``@<group>`` to the node id of every test with an ``xdist_group`` mark (the scheduler reads the group from
    there). xdist 3.8 writes ``item._nodeid``, which pytest 9.2 no longer reads (its node ids are structured:
    pytest-xdist issue #1386), so the groups were silently ignored. Call it after xdist's own hook; it leaves
    alone every id that already carries its group."""
    if not getattr(config.option, "loadgroup", False):  # set on xdist workers under --dist loadgroup
        return
    from _pytest.nodeid import NodeId  # pytest >= 9.2's structured node ids; the only private name used here

    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix) and isinstance(getattr(item, "_id", None), NodeId):
            item._id = NodeId.parse(item.nodeid + suffix)
