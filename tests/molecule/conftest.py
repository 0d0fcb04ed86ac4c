"""Start the molecule scenarios in the background when the session selects their tests (see runner.py).

Collection decides: if the site test (`test_the_site_scenario_converges_idempotently_and_verifies`) or
role scenario tests (`test_molecule_scenario_converges_idempotently_and_verifies[...]`) are among the
selected tests, their molecule runs start right after collection and those tests are moved to the end of
the session (the role scenarios, then the site), where each waits for its run. A session that ends before
them (-x, Ctrl-C) stops the runs and destroys their hosts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.molecule.runner import REPO, MoleculeRun, RoleRuns, start_site

SITE_TEST = "test_the_site_scenario_converges_idempotently_and_verifies"
ROLE_TEST = "test_molecule_scenario_converges_idempotently_and_verifies"
SITE_RUN = pytest.StashKey[MoleculeRun]()
ROLE_RUNS = pytest.StashKey[RoleRuns]()


def _named(item: pytest.Item, name: str) -> bool:
    return getattr(item, "originalname", None) == name


def _case(item: pytest.Item) -> tuple[Path, str]:
    params = item.callspec.params  # type: ignore[attr-defined]
    return REPO / params["project"], params["scenario"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    roles = [item for item in items if _named(item, ROLE_TEST)]
    site = [item for item in items if _named(item, SITE_TEST)]
    items[:] = [item for item in items if not (_named(item, ROLE_TEST) or _named(item, SITE_TEST))] + roles + site


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if any(_named(item, SITE_TEST) for item in session.items):
        session.config.stash[SITE_RUN] = start_site()
    cases = [_case(item) for item in session.items if _named(item, ROLE_TEST)]
    if cases:
        session.config.stash[ROLE_RUNS] = RoleRuns.start(cases)


def pytest_sessionfinish(session: pytest.Session) -> None:
    roles = session.config.stash.get(ROLE_RUNS, None)
    if roles is not None:
        roles.stop()
    run = session.config.stash.get(SITE_RUN, None)
    if run is not None:
        run.stop()
        run.remove()


@pytest.fixture
def site_run(request: pytest.FixtureRequest) -> MoleculeRun:
    """The session's background site run (started at collection)."""
    return request.config.stash[SITE_RUN]


@pytest.fixture
def role_runs(request: pytest.FixtureRequest) -> RoleRuns:
    """The session's background role scenario lanes (started at collection)."""
    return request.config.stash[ROLE_RUNS]
