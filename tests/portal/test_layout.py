import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from tests.portal.conftest import client_as

pytestmark = pytest.mark.django_db


def test_every_asset_is_local(world):
    page = client_as(world.pku_admin).get(reverse("portal:dashboard")).content.decode()
    assets = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page)
    assert "/static/vendor/htmx/htmx.min.js" in assets
    assert "/static/portal/portal.css" in assets
    assert all(asset.startswith("/static/") for asset in assets), assets
    for path in ["vendor/htmx/htmx.min.js", "vendor/htmx/LICENSE", "portal/portal.css", "portal/portal.js"]:
        assert finders.find(path), path


def test_the_top_bar_shows_name_institution_nav_and_forms(world):
    page = client_as(world.pku_admin).get(reverse("portal:dashboard")).content.decode()
    assert "算网" in page and "Suanwang" in page
    assert "张伟 Zhang Wei" in page and "北京大学" in page
    assert "PKU administration" in page
    assert 'action="/i18n/setlang/" method="post"' in page
    assert 'action="/logout/" method="post"' in page


def test_flash_messages_are_shown_after_a_redirect(world, pku_admin_client):
    response = pku_admin_client.post(
        reverse("portal:institution_members", args=[world.pku.pk]),
        {"email": "flash@pku.edu.cn", "role": "researcher"},
        follow=True,
    )
    assert 'class="flash flash-success"' in response.content.decode()
