"""The centre pages: every centre with its state (a drained one clearly marked), capacity and prices; a centre's
partitions; operators drain, take offline and bring back online; everyone else gets 403."""

import pytest
from django.urls import reverse

from accounts.actors import system_actor
from federation import services
from federation.models import Site, SiteState

pytestmark = pytest.mark.django_db


def _drain(code: str, reason: str = "cooling maintenance") -> None:
    services.site_set_state(actor=system_actor(), site=Site.objects.get(code=code), state=SiteState.DRAINING,
                            reason=reason)


def test_the_centres_page_lists_both_centres_and_marks_a_drained_one(world, browser):
    _drain("tianjin")
    page = browser(world.users["researcher_b"]).get(reverse("centres:site_list")).content.decode()
    for site in Site.objects.all():
        assert site.name in page and reverse("centres:site_detail", args=[site.code]) in page
    assert page.count('class="fd-site-draining"') == 1 and page.count('class="fd-site-online"') == 1
    assert '<span class="badge fd-badge-draining">Draining</span>' in page
    assert "cooling maintenance" in page
    assert "draining or offline" in page


def test_the_centre_page_shows_partitions_prices_and_applications(world, browser):
    site = Site.objects.get(code="tianjin")
    page = browser(world.users["researcher_a"]).get(reverse("centres:site_detail", args=["tianjin"])).content.decode()
    for partition in site.partitions.all():
        assert partition.name in page
    assert "GROMACS" in page and "Credits per card-hour" in page and "V100" in page
    assert "Operate this centre" not in page
    missing = browser(world.users["researcher_a"]).get(reverse("centres:site_detail", args=["atlantis"]))
    assert missing.status_code == 404


def test_the_operator_drains_zhengzhou_from_the_centre_page(world, browser):
    client = browser(world.users["operator"])
    url = reverse("centres:site_detail", args=["zhengzhou"])
    page = client.get(url).content.decode()
    assert "Operate this centre" in page and 'value="draining"' in page and 'value="online"' not in page
    response = client.post(reverse("centres:site_set_state", args=["zhengzhou"]),
                           {"state": "draining", "reason": "cooling maintenance until 18:00"})
    assert response.status_code == 302 and response["Location"] == url
    site = Site.objects.get(code="zhengzhou")
    assert (site.state, site.state_reason) == (SiteState.DRAINING, "cooling maintenance until 18:00")
    page = client.get(url).content.decode()
    assert "is now draining" in page and "cooling maintenance until 18:00" in page
    assert 'value="online"' in page  # now the way back is offered
    response = client.post(reverse("centres:site_set_state", args=["zhengzhou"]), {"state": "online"})
    assert response.status_code == 302 and Site.objects.get(code="zhengzhou").state == SiteState.ONLINE


def test_a_refused_move_shows_the_message(world, browser):
    site = Site.objects.get(code="zhengzhou")
    services.site_set_state(actor=system_actor(), site=site, state=SiteState.OFFLINE)
    response = browser(world.users["operator"]).post(reverse("centres:site_set_state", args=["zhengzhou"]),
                                                      {"state": "draining"})
    assert response.status_code == 409
    assert "A centre cannot go from Offline to Draining." in response.content.decode()
    assert Site.objects.get(code="zhengzhou").state == SiteState.OFFLINE


def test_non_operators_get_403_and_the_centre_does_not_move(world, browser):
    for who in ("researcher_a", "pi_a", "admin_b", "committee"):
        response = browser(world.users[who]).post(reverse("centres:site_set_state", args=["zhengzhou"]),
                                                   {"state": "draining"})
        assert response.status_code == 403, who
    # The operator runs zhengzhou only.
    response = browser(world.users["operator"]).post(reverse("centres:site_set_state", args=["tianjin"]),
                                                     {"state": "draining"})
    assert response.status_code == 403
    assert set(Site.objects.values_list("state", flat=True)) == {SiteState.ONLINE}


def test_a_federation_admin_may_operate_every_centre(world, browser):
    response = browser(world.users["fedadmin"]).post(reverse("centres:site_set_state", args=["tianjin"]),
                                                     {"state": "offline", "reason": "power"})
    assert response.status_code == 302 and Site.objects.get(code="tianjin").state == SiteState.OFFLINE
