"""Fixtures for the allocation pages: institution A's allocation world built through the services
(tests.factories.build_allocation_world), a PI at institution B, and browser clients per person."""

import pytest

from accounts.models import InstitutionRole
from tests.factories import Fed, build_allocation_world, make_member
from tests.page_fixtures import _no_static_file_scan, browser  # noqa: F401  (shared fixtures)


@pytest.fixture
def world(fed) -> Fed:
    """fed.objects: project, member, draft, reviewed, open, open_review, allocation (explore), start, end."""
    return build_allocation_world(fed)


@pytest.fixture
def pi_b(fed):
    return make_member(fed.b, InstitutionRole.PI, "pi@tsinghua.edu.cn")
