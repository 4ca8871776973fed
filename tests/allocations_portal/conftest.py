"""Fixtures for the allocation pages: institution A's allocation world built through the services
(tests.factories.build_allocation_world), a PI at institution B, and browser clients per person."""

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import InstitutionRole
from tests.factories import Fed, build_allocation_world, make_member


@pytest.fixture
def world(fed) -> Fed:
    """fed.objects: project, member, draft, reviewed, open, open_review, allocation (explore), start, end."""
    return build_allocation_world(fed)


@pytest.fixture
def pi_b(fed):
    return make_member(fed.b, InstitutionRole.PI, "pi@tsinghua.edu.cn")


@pytest.fixture
def browser():
    """browser(user, language="en"): a logged-in Django test client that reads the given language."""

    def make(user=None, language: str = "en") -> Client:
        client = Client()
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture(autouse=True)
def _no_static_file_scan(settings):
    # WhiteNoise in autorefresh mode looks static files up per request instead of indexing them per client.
    settings.WHITENOISE_AUTOREFRESH = True
