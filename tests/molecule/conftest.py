"""Start the site scenario in the background when the session selects its test (see runner.py).

Collection decides: if `test_the_site_scenario_converges_idempotently_and_verifies` is among the
selected tests, its molecule run starts right after collection and that test is moved to the end of
the session, where it waits for the run. A session that ends before it (-x, Ctrl-C) stops the run and
destroys its VM.
"""

from __future__ import annotations

import pytest

from tests.molecule.runner import SiteRun

SITE_TEST = "test_the_site_scenario_converges_idempotently_and_verifies"
SITE_RUN = pytest.StashKey[SiteRun]()


def _is_site(item: pytest.Item) -> bool:
    return getattr(item, "originalname", None) == SITE_TEST


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    site = [item for item in items if _is_site(item)]
    items[:] = [item for item in items if not _is_site(item)] + site


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(_is_site(item) for item in session.items) and not session.config.option.collectonly:
        session.config.stash[SITE_RUN] = SiteRun.start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(SITE_RUN, None)
    if run is not None:
        run.stop()
        run.remove()


@pytest.fixture
def site_run(request: pytest.FixtureRequest) -> SiteRun:
    """The session's background site run (started at collection)."""
    return request.config.stash[SITE_RUN]
