"""Fixtures for the job and centre pages: institution A's allocation world (a project with an explore
allocation of cpu, two centres zhengzhou and tianjin, one routed job) and browser clients per person."""

import pytest
from django.conf import settings
from django.test import Client

from tests.factories import Fed, build_allocation_world


@pytest.fixture
def world(fed) -> Fed:
    """fed.objects: project, job (a routed cpu job of pi_a), allocation, ...; the operator runs zhengzhou."""
    return build_allocation_world(fed)


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
