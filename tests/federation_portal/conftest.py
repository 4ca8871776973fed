"""Fixtures for the job and centre pages: institution A's allocation world (a project with an explore
allocation of cpu, two centres zhengzhou and tianjin, one routed job) and browser clients per person."""

import pytest

from tests.factories import Fed, build_allocation_world
from tests.page_fixtures import _no_static_file_scan, browser  # noqa: F401  (shared fixtures)


@pytest.fixture
def world(fed) -> Fed:
    """fed.objects: project, job (a routed cpu job of pi_a), allocation, ...; the operator runs zhengzhou."""
    return build_allocation_world(fed)
