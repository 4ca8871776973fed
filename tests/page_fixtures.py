"""Fixtures the portal-page test packages share (imported by their conftest.py files)."""

import pytest
from django.conf import settings
from django.test import Client


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
