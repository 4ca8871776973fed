"""Site-quota pages: operators answer proposed shares on their centre page; the PI sees the allocation's
shares per centre and moves quota; other institutions see nothing."""

from django.urls import reverse

from federation.models import SiteQuota


def zhengzhou_share(world) -> SiteQuota:
    return SiteQuota.objects.get(allocation_id=world.objects["allocation"], site__code="zhengzhou",
                                 resource_class__code="cpu")


def test_the_operator_answers_a_proposed_share_on_the_centre_page(world, browser):
    share = zhengzhou_share(world)
    operator = browser(world.users["operator"])
    page = operator.get(reverse("centres:site_detail", args=["zhengzhou"])).content.decode()
    assert "Shares proposed to this centre" in page and "Climate" in page
    respond = reverse("centres:quota_respond", args=["zhengzhou", share.pk])
    assert respond in page

    refused = operator.post(respond, {"action": "decline"}, follow=True)
    assert "Say why the centre declines the share." in refused.content.decode()
    assert SiteQuota.objects.get(pk=share.pk).state == "proposed"
    response = operator.post(respond, {"action": "accept"})
    assert response.status_code == 302 and response["Location"].endswith("#quotas")
    assert SiteQuota.objects.get(pk=share.pk).state == "accepted"
    page = operator.get(reverse("centres:site_detail", args=["zhengzhou"])).content.decode()
    assert respond not in page  # answered: no longer pending

    # Other people see no panel and cannot answer.
    researcher = browser(world.users["researcher_a"])
    assert "Shares proposed to this centre" not in researcher.get(
        reverse("centres:site_detail", args=["zhengzhou"])).content.decode()
    assert researcher.post(respond, {"action": "accept"}).status_code in (302, 403)
    assert browser(world.users["admin_b"]).post(respond, {"action": "accept"}).status_code == 404


def test_the_pi_sees_the_shares_and_moves_quota_between_centres(world, browser):
    share = zhengzhou_share(world)
    url = reverse("centres:allocation_quotas", args=[world.objects["allocation"]])
    pi = browser(world.users["pi_a"])
    detail = pi.get(reverse("allocations:allocation_detail", args=[world.objects["allocation"]])).content.decode()
    assert url in detail
    page = pi.get(url).content.decode()
    assert "Move quota to another centre" in page and "zhengzhou" in page

    too_much = pi.post(url, {"resource_class": "cpu", "from_site": "zhengzhou", "to_site": "tianjin",
                             "amount": 100000})
    assert too_much.status_code == 409
    assert "does not hold that much unused quota" in too_much.content.decode()
    moved = pi.post(url, {"resource_class": "cpu", "from_site": "zhengzhou", "to_site": "tianjin", "amount": 10,
                          "reason": "closer to our data"})
    assert moved.status_code == 302
    assert SiteQuota.objects.get(pk=share.pk).amount == share.amount - 10 * 3600

    member = browser(world.users["researcher_a"]).get(url).content.decode()
    assert "zhengzhou" in member and "Move quota to another centre" not in member
    assert browser(world.users["admin_b"]).get(url).status_code == 404


def test_the_pages_are_translated(world, browser):
    url = reverse("centres:allocation_quotas", args=[world.objects["allocation"]])
    page = browser(world.users["pi_a"], language="zh-hans").get(url).content.decode()
    assert "在其他中心之间" in page or "转移配额" in page


def test_the_request_wizard_takes_the_pis_preferred_centres(world, browser):
    from allocations.models import AllocationRequest
    from tests.allocations_portal.test_request_wizard import form_data, wizard_url

    pi = browser(world.users["pi_a"])
    bad = pi.post(wizard_url(world), form_data(world, site_preferences="tianjin; rm -rf"))
    assert bad.status_code == 400 and "Use centre codes such as zhengzhou" in bad.content.decode()
    response = pi.post(wizard_url(world), form_data(world, title="Preferring", site_preferences="Tianjin, zhengzhou"))
    assert response.status_code == 302
    assert AllocationRequest.objects.get(title="Preferring").site_preferences == ["tianjin", "zhengzhou"]
